#!/usr/bin/env bash
# End to end: the `intake pages` CLI on the committed samples/ (whose sizes and resolutions are
# set in tools/make_samples.py), its exit statuses, JSON output, text layer and PNG pages.
set -u
bin="$INTAKE_BIN_DIR/intake"
samples="$INTAKE_SOURCE_DIR/samples"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@"; then echo "FAIL: $what"; fail=1; fi
}

out=$("$bin" pages "$samples/lab_report.tiff"); rc=$?
check "tiff exit 0" test $rc -eq 0
check "tiff two A4 pages at 300 dpi" test "$out" = "page 1: 2480x3508, 300 x 300 dpi, tiff
page 2: 2480x3508, 300 x 300 dpi, tiff"

out=$("$bin" pages "$samples/invoice_screenshot.png")
# pHYs stores pixels per metre: 96 dpi is saved as 3780, which reads back as 96.01 dpi.
check "png line" test "$out" = "page 1: 1280x800, 96.01 x 96.01 dpi, png"
out=$("$bin" pages "$samples/nameplate.jpg")
check "jpeg line" test "$out" = "page 1: 1200x800, 72 x 72 dpi, jpeg"

out=$("$bin" pages "$samples/invoice.pdf" --text)
check "pdf one page" test "$(grep -c '^page ' <<<"$out")" -eq 1
check "pdf text layer" grep -q "Invoice number: INV-2026-00417" <<<"$out"

"$bin" pages "$samples/invoice.pdf" --json --text >"$tmp/invoice.json"
check "json parses with one page and words" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "pdf" and len(d["pages"]) == 1, d
p = d["pages"][0]
assert p["width"] * p["height"] <= 2000000 * 1.01, p
words = [w["text"] for w in p["words"]]
assert "INV-2026-00417" in words, words
for w in p["words"]:
    x0, y0, x1, y1 = w["box"]
    assert 0 <= x0 < x1 <= p["width"] and 0 <= y0 < y1 <= p["height"], w
' "$tmp/invoice.json"

"$bin" pages "$samples/lab_report.tiff" --out "$tmp/pages/nested" >/dev/null
check "--out makes its directories and writes one PNG per page" test -f "$tmp/pages/nested/page-002.png"
check "page PNGs decode again" test "$("$bin" pages "$tmp/pages/nested/page-002.png")" = \
  "page 1: 2480x3508, 300 x 300 dpi, png"

printf 'not a document' >"$tmp/fake.pdf"
"$bin" pages "$tmp/fake.pdf" 2>"$tmp/err" >/dev/null; rc=$?
check "refused document exits 2" test $rc -eq 2
check "one error line naming the file" test "$(wc -l <"$tmp/err")" -eq 1
check "error names the file" grep -q "fake.pdf" "$tmp/err"

"$bin" pages "$samples/lab_report.tiff" --max-pages 1 2>"$tmp/err" >/dev/null; rc=$?
check "page limit exits 2" test $rc -eq 2
check "page limit message" grep -q "too many pages" "$tmp/err"

check "intake --help" "$bin" --help >/dev/null
check "intake pages --help" "$bin" pages --help >/dev/null
"$bin" frobnicate 2>/dev/null; rc=$?
check "unknown command exits 2" test $rc -eq 2
"$bin" pages 2>/dev/null; rc=$?
check "missing FILE exits 2" test $rc -eq 2

exit $fail
