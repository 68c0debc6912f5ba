#!/usr/bin/env python3
"""Writes the sample documents in samples/: one per input kind intake accepts, with content that
matches the shipped schemas (an invoice, a lab report, an equipment nameplate).

    python3 tools/make_samples.py [OUT_DIR]      # default: samples/

Deterministic: the same Pillow version and fonts give the same bytes. The PDF is written by hand
(standard Helvetica, no embedded font) so it has a real text layer, like a born-digital invoice.
Needs Pillow (tools/requirements.txt), the DejaVu fonts (fonts-dejavu-core) and, for the Chinese
VAT invoice, a CJK font: WenQuanYi Zen Hei (fonts-wqy-zenhei), or any TrueType collection named by
$CJK_FONT. Only this script needs the CJK font; intake itself never does."""
import os
import sys

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CJK_FONT = os.environ.get("CJK_FONT", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")

INVOICE_LINES = [
    (50, 780, 20, "INVOICE"),
    (50, 750, 10, "Invoice number: INV-2026-00417"),
    (50, 735, 10, "Issue date: 2026-11-02      Due date: 2026-12-02"),
    (50, 705, 10, "Seller: Northwind Components GmbH, Hafenstrasse 12, 20457 Hamburg, DE"),
    (50, 690, 10, "VAT ID: DE811907980      IBAN: DE89 3704 0044 0532 0130 00"),
    (50, 665, 10, "Buyer: Contoso Medical Ltd, 4 Harbour Road, Dublin, IE"),
    (50, 620, 10, "Description                     Qty      Unit price       Amount"),
    (50, 600, 10, "Sensor cable M12, 2 m            10           14.50         145.00"),
    (50, 585, 10, "Pressure transducer PT-40         2          212.00         424.00"),
    (50, 570, 10, "Calibration service               1           95.00          95.00"),
    (50, 535, 10, "Subtotal (EUR)                                              664.00"),
    (50, 520, 10, "VAT 19%                                                     126.16"),
    (50, 505, 11, "Total (EUR)                                                 790.16"),
]


def pdf_invoice(path):
    """A one-page A4 PDF with a text layer, a rule under the header and a box round the items."""
    content = ["0.2 0.2 0.6 RG 1.5 w 50 770 m 545 770 l S", "0 0 0 RG 0.5 w 45 560 500 75 re S"]
    for x, y, size, text in INVOICE_LINES:
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        content.append(f"BT /F1 {size} Tf {x} {y} Td ({esc}) Tj ET")
    stream = "\n".join(content).encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    with open(path, "wb") as f:
        f.write(out)


def lab_report_page(width, height, page_no):
    img = Image.new("L", (width, height), 255)
    d = ImageDraw.Draw(img)
    big, body = ImageFont.truetype(FONT_BOLD, 64), ImageFont.truetype(FONT, 40)
    d.text((150, 150), "CITY HOSPITAL CLINICAL LABORATORY", font=big, fill=0)
    d.text((150, 260), f"Lab report   page {page_no} of 2", font=body, fill=0)
    d.text((150, 330), "Specimen collected: 2026-10-28 07:45   Reported: 2026-10-28 16:10",
           font=body, fill=0)
    rows = [("Test", "Result", "Unit", "Reference", "Flag")]
    if page_no == 1:
        rows += [("Hemoglobin", "13.9", "g/dL", "13.0-17.0", ""),
                 ("WBC", "11.8", "10^9/L", "4.0-10.0", "H"),
                 ("Platelets", "245", "10^9/L", "150-400", "")]
    else:
        rows += [("Glucose (fasting)", "5.1", "mmol/L", "3.9-5.5", ""),
                 ("Potassium", "3.2", "mmol/L", "3.5-5.1", "L")]
    y = 480
    for row in rows:
        for x, cell in zip((150, 900, 1250, 1550, 2050), row):
            d.text((x, y), cell, font=body, fill=0)
        y += 80
    d.line((150, 550, 2400, 550), fill=0, width=4)
    # A scanner's slight blur and threshold, so the bilevel page looks like a real fax/scan.
    return img.filter(ImageFilter.GaussianBlur(1.2)).point(lambda v: 255 if v > 140 else 0, "1")


def tiff_lab_report(path):
    pages = [lab_report_page(2480, 3508, n) for n in (1, 2)]  # A4 at 300 dpi
    pages[0].save(path, compression="group4", dpi=(300, 300), save_all=True,
                  append_images=pages[1:])


def png_screenshot(path):
    img = Image.new("RGB", (1280, 800), (246, 247, 249))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 1280, 56), fill=(36, 52, 94))
    d.text((24, 14), "Supplier portal - Invoice INV-88231", font=ImageFont.truetype(FONT, 24),
           fill=(255, 255, 255))
    body = ImageFont.truetype(FONT, 20)
    lines = ["Invoice number: INV-88231", "Issue date: 2026-09-14", "Seller: Fabrikam Inc.",
             "Buyer: Northwind Traders", "Currency: USD", "Subtotal: 1,200.00",
             "Tax: 96.00", "Total: 1,296.00"]
    for i, line in enumerate(lines):
        d.text((48, 96 + 44 * i), line, font=body, fill=(20, 20, 20))
    img.save(path, dpi=(96, 96), optimize=True)


# A China VAT invoice (增值税专用发票) as a rendered page. The taxpayer numbers carry valid
# GB 32100 check digits, and the amounts satisfy the invoice schema's rules.
CN_VAT_LINES = [
    ("发票代码: 044031900111", (60, 110)), ("发票号码: 12345678", (560, 110)),
    ("开票日期: 2026年03月15日", (960, 110)),
    ("购买方  名称: 深圳市云帆科技有限公司", (60, 190)),
    ("纳税人识别号: 91440300MA5F3K7Q2E", (60, 230)),
    ("销售方  名称: 上海恒泰设备有限公司", (60, 290)),
    ("纳税人识别号: 91310115MA1H8N4W61", (60, 330)),
]
CN_VAT_ITEMS = [
    ("货物或应税劳务、服务名称", "规格型号", "单位", "数量", "单价", "金额", "税率", "税额"),
    ("服务器机柜", "42U", "台", "2", "3500.00", "7000.00", "13%", "910.00"),
    ("技术服务费", "", "次", "1", "1000.00", "1000.00", "6%", "60.00"),
]


def png_cn_vat(path):
    img = Image.new("RGB", (1400, 900), (255, 255, 255))
    d = ImageDraw.Draw(img)
    title, body = ImageFont.truetype(CJK_FONT, 40), ImageFont.truetype(CJK_FONT, 24)
    d.text((470, 30), "增值税专用发票", font=title, fill=(150, 40, 40))
    for text, xy in CN_VAT_LINES:
        d.text(xy, text, font=body, fill=(20, 20, 20))
    d.rectangle((50, 390, 1350, 640), outline=(150, 40, 40), width=2)
    y = 410
    for row in CN_VAT_ITEMS:
        for x, cell in zip((60, 400, 540, 640, 740, 880, 1040, 1160), row):
            d.text((x, y), cell, font=body, fill=(20, 20, 20))
        y += 60
    d.text((60, 670), "合计  金额: 8000.00    税额: 970.00", font=body, fill=(20, 20, 20))
    d.text((60, 720), "价税合计 (大写): 捌仟玖佰柒拾元整    (小写): ¥8970.00", font=body,
           fill=(20, 20, 20))
    img.save(path, dpi=(150, 150), optimize=True)


def jpeg_nameplate(path):
    img = Image.new("RGB", (1200, 800), (120, 124, 128))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((100, 100, 1100, 700), radius=30, fill=(205, 208, 212),
                        outline=(60, 60, 60), width=6)
    f = ImageFont.truetype(FONT_BOLD, 44)
    b = ImageFont.truetype(FONT, 34)
    d.text((150, 140), "VOLTARA ELECTRIC MOTORS", font=f, fill=(20, 20, 20))
    for i, line in enumerate(["Model: VX-315-4", "Serial No.: VX4-2026-118273",
                              "400 V  3~  50 Hz   7.5 kW   14.2 A", "IP55   Made 2026-03"]):
        d.text((150, 240 + 90 * i), line, font=b, fill=(25, 25, 25))
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    # Stored as a phone held sideways saves it: pixels turned 90 degrees counter-clockwise, with
    # EXIF Orientation 6 (turn clockwise to view), so ingest must rotate it back to 1200x800.
    exif = Image.Exif()
    exif[0x0112] = 6
    img.transpose(Image.Transpose.ROTATE_90).save(path, quality=88, dpi=(72, 72),
                                                  exif=exif.tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                             "samples")
    os.makedirs(out, exist_ok=True)
    pdf_invoice(os.path.join(out, "invoice.pdf"))
    tiff_lab_report(os.path.join(out, "lab_report.tiff"))
    png_screenshot(os.path.join(out, "invoice_screenshot.png"))
    jpeg_nameplate(os.path.join(out, "nameplate.jpg"))
    png_cn_vat(os.path.join(out, "cn_vat_invoice.png"))


if __name__ == "__main__":
    main()
