#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/ (deterministic).

Small on purpose (a few KB per target): libFuzzer grows its own corpus from these in the build
tree. Images come from Pillow in every variant the decoders handle; the PDF, schema,
configuration, weights index, tokenizer and grammar seeds come from the project's samples, shipped schemas,
default configuration and the tiny fixture model. Run: python3 tools/make_fuzz_corpus.py
"""
import io
import json
import os
import shutil
import struct
import zlib

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "tiny-glm4v")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(target, rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        put(target, os.path.basename(rel), f.read())


def gradient(mode, w, h):
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 37) % 256, (y * 53) % 256, ((x + y) * 11) % 256)
                 for y in range(h) for x in range(w)])
    return img.convert(mode) if mode != "RGB" else img


def encoded(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def images():
    for mode in ("1", "L", "P", "RGB", "RGBA", "LA", "I;16"):
        put("png", f"{mode.replace(';', '')}.png", encoded(gradient(mode, 9, 7), "PNG"))
    put("png", "interlaced.png", encoded(gradient("RGB", 9, 7), "PNG", interlace=1))
    put("png", "dpi.png", encoded(gradient("L", 4, 3), "PNG", dpi=(300, 300)))
    exif = Image.Exif()
    exif[0x0112] = 6
    put("png", "exif.png", encoded(gradient("RGB", 5, 3), "PNG", exif=exif.tobytes()))
    # A zTXt chunk after IHDR (the decoder bounds decompressed text).
    png = encoded(gradient("L", 4, 4), "PNG")
    body = b"Comment\0\0" + zlib.compress(b"x" * 200)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"zTXt" + body))
    put("png", "ztxt.png", png[:33] + chunk + png[33:])

    for mode in ("L", "RGB", "CMYK"):
        put("jpeg", f"{mode}.jpg", encoded(gradient(mode, 16, 8), "JPEG", quality=50))
    put("jpeg", "progressive.jpg", encoded(gradient("RGB", 16, 16), "JPEG", progressive=True))
    put("jpeg", "dpi.jpg", encoded(gradient("L", 8, 8), "JPEG", dpi=(200, 200)))
    put("jpeg", "exif.jpg", encoded(gradient("RGB", 8, 16), "JPEG", exif=exif.tobytes()))

    for mode, comp in (("1", "group4"), ("1", "raw"), ("L", "raw"), ("L", "packbits"),
                       ("RGB", "tiff_lzw"), ("RGB", "tiff_deflate"), ("P", "raw"),
                       ("CMYK", "raw"), ("RGBA", "raw"), ("I;16", "raw")):
        put("tiff", f"{mode.replace(';', '')}-{comp}.tiff",
            encoded(gradient(mode, 8, 6), "TIFF", compression=comp))
    buf = io.BytesIO()
    gradient("L", 6, 4).save(buf, "TIFF", save_all=True, dpi=(300, 300),
                             append_images=[gradient("1", 4, 6), gradient("RGB", 3, 3)])
    put("tiff", "multipage.tiff", buf.getvalue())
    put("tiff", "jpeg-in-tiff.tiff", encoded(gradient("RGB", 16, 16), "TIFF",
                                             compression="jpeg"))


def pdf(objects, trailer=""):
    """A PDF with a correct cross-reference table around the given object bodies."""
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R {trailer}>>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return out


def stream(content):
    return f"<< /Length {len(content)} >>\nstream\n{content}\nendstream"


def pdfs():
    copy("pdf", "samples/invoice.pdf")
    font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    text = "BT /F1 12 Tf 20 50 Td (Total 1,284.50 EUR) Tj ET 0 0 1 rg 10 10 30 20 re f"
    put("pdf", "text.pdf", pdf([
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Rotate 90 "
        "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        stream(text), font]))
    kids = " ".join(f"{3 + i} 0 R" for i in range(3))
    put("pdf", "three-pages.pdf", pdf(
        ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count 3 >>"]
        + [f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {50 + 10 * i} 60] >>"
           for i in range(3)]))
    # A page whose content stream is Flate-compressed, with an inherited MediaBox.
    data = zlib.compress(b"1 0 0 rg 0 0 40 40 re f")
    obj = f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode() + data
    body = pdf(["<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 80 80] >>",
                "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>", "@STREAM@"])
    fixed = body.replace(b"@STREAM@", obj + b"\nendstream")
    # Offsets after the stream moved: let poppler reconstruct the table, as with damaged files.
    put("pdf", "flate.pdf", fixed)


def texts():
    copy("schema", "schemas/nameplate.yaml")
    copy("schema", "schemas/lab_report.yaml")
    put("schema", "rules.yaml", """name: rules
version: "2"
instruction: Read the document.
locale: eu
fields:
  iban: {type: string, normalize: [remove_spaces, upper_case]}
  date: {type: date, required: true}
  kind: {type: enum, values: [a, b]}
  items:
    type: array
    fields:
      qty: {type: decimal, min: 0}
      price: {type: decimal}
      amount: {type: decimal, max: 1000000}
  total: {type: decimal}
rules:
  - check: "items[].qty * items[].price == items[].amount"
    tolerance: "0.01"
  - check: "sum(items[].amount) <= total"
  - checksum: iban
    field: iban
""")
    copy("config", "systemd/intake.yaml")
    put("config", "full.yaml", """inboxes:
  - path: in/invoices
    schema: invoice
  - path: /srv/scans
    name: lab
    watch: poll
    stability: 30s
outbox: out
archive: /var/archive
failed: failed
state: ./state/
device: cpu
workers: 4
max_claimed: 64
spool_min_free: 512MiB
originals: delete
duplicates: reuse
limits:
  max_file_size: 64MiB
  max_pages: 100
  parse_timeout: 90s
  parse_memory: 2GiB
""")

    index = json.load(open(os.path.join(FIXTURE, "model.safetensors.index.json")))
    put("weights_index", "fixture.json", json.dumps(index, separators=(",", ":")))
    put("weights_index", "outside.json",
        '{"weight_map": {"lm_head.weight": "../model-00001-of-00002.safetensors"}}')
    put("weights_index", "empty-map.json", '{"metadata": {"total_size": 1}, "weight_map": {}}')

    def st(tensors, meta=None):
        header, data = {}, b""
        if meta:
            header["__metadata__"] = meta
        for name, dtype, shape, raw in tensors:
            header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + data
    put("safetensors", "two.safetensors", st([
        ("a.weight", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
        ("b", "BF16", [3], b"\x80\x3f" * 3)], {"format": "pt"}))
    put("safetensors", "dtypes.safetensors", st([
        ("i64", "I64", [1], b"\0" * 8), ("u8", "U8", [2, 1], b"\1\2"),
        ("f16", "F16", [1, 1, 1], b"\0\x3c"), ("empty", "F32", [0, 4], b""),
        ("scalar", "F64", [], b"\0" * 8), ("flag", "BOOL", [1], b"\1")]))

    lines = [l for l in open(os.path.join(ROOT, "tools", "tokenizer_corpus.txt"),
                             encoding="utf-8").read().split("\n") if l]
    for i, line in enumerate(lines[:6] + lines[-4:]):
        put("tokenizer", f"text-{i}", b"\0" + line.encode())
    put("tokenizer", "special", b"\2<|begin_of_image|><|image|>x<|endoftext|> \xe4\xb8\xad")
    golden = json.load(open(os.path.join(FIXTURE, "tokenizer_golden.json")))
    for i, case in enumerate(golden["encode"][:4]):
        ids = b"".join(struct.pack("<H", t) for t in case["ids"])
        put("tokenizer", f"ids-{i}", b"\1" + ids)
        put("tokenizer", f"ids-skip-{i}", b"\3" + ids)

    put("validate", "invoice.json", json.dumps({
        "invoice_number": "INV-2024-00318", "issue_date": "14 March 2024",
        "currency": "EUR", "seller": {"name": " Contoso GmbH ", "vat_id": "DE123456789",
                                      "iban": "de89 3704 0044 0532 0130 00"},
        "line_items": [{"description": "Paper", "quantity": "12", "unit_price": "4,50",
                        "amount": "54.00"}],
        "subtotal": "1,070.42", "tax": "203.38", "total": "1263.80"}))
    put("validate", "lab.json", json.dumps({
        "patient": {"name": "Jane Doe", "date_of_birth": "03/15/1980"},
        "collected": "2024-03-14", "results": [
            {"test": "Glucose", "value": "5,9", "unit": "mmol/L", "range": "3.5-5.5",
             "flag": "H"},
            {"test": "Na", "value": 120, "range": "<145", "low": 135, "high": 145,
             "flag": "L"}]}))
    put("validate", "nameplate.json", json.dumps({
        "manufacturer": "ABB", "model": "M3BP 160", "serial_number": "3gb 1234-56",
        "rated_voltage": "230/400 V", "rated_current_a": "28.5", "frequency_hz": 50,
        "power_kw": "15", "year": 2019}))
    put("validate", "wrong-types.json", '{"total": [1], "line_items": {"a": null}, "x": 1e400}')
    put("validate", "not-object.json", '[null, true, "2024-02-30", -0.0]')


def grammar():
    """Step streams for fuzz_grammar: a schema byte, then 16-bit steps (top bit clear: the n-th
    allowed token; set: a raw id)."""
    for schema in range(3):
        for name, steps in (("first", [0] * 400), ("second", [1] * 400),
                            ("mixed", [(i * 7919) % 97 for i in range(400)]),
                            ("raw", [0x8000 | (i * 31) for i in range(8)])):
            put("grammar", f"{schema}-{name}", bytes([schema]) +
                b"".join(struct.pack("<H", v) for v in steps))


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    images()
    pdfs()
    texts()
    grammar()
    for target in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, target))
        size = sum(os.path.getsize(os.path.join(OUT, target, f)) for f in files)
        print(f"{target:14} {len(files):3} files {size:7} bytes")


if __name__ == "__main__":
    main()
