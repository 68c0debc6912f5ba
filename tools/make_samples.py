#!/usr/bin/env python3
"""Writes the sample documents in samples/: one per input kind intake accepts, with content that
matches the shipped schemas (an invoice, a lab report, an equipment nameplate).

    python3 tools/make_samples.py [OUT_DIR]      # default: samples/

Deterministic: the same Pillow version and fonts give the same bytes. The PDF is written by hand
(standard Helvetica, no embedded font) so it has a real text layer, like a born-digital invoice.
Needs Pillow (tools/requirements.txt) and the DejaVu fonts (fonts-dejavu-core)."""
import os
import sys

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

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
    img.save(path, quality=88, dpi=(72, 72))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..",
                                                             "samples")
    os.makedirs(out, exist_ok=True)
    pdf_invoice(os.path.join(out, "invoice.pdf"))
    tiff_lab_report(os.path.join(out, "lab_report.tiff"))
    png_screenshot(os.path.join(out, "invoice_screenshot.png"))
    jpeg_nameplate(os.path.join(out, "nameplate.jpg"))


if __name__ == "__main__":
    main()
