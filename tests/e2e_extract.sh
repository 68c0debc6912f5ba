#!/usr/bin/env bash
# End to end: `intake extract` on every sample with the tiny fixture model and its schema. Values
# from random weights mean nothing; the result's shape, provenance and exit statuses do. Also a
# refused document (exit 2, one line, no --out file) and tools/score on a result.
set -u
bin="$INTAKE_BIN_DIR/intake"
src="$INTAKE_SOURCE_DIR"
model="$src/tests/fixtures/tiny-glm4v"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@"; then echo "FAIL: $what"; fail=1; fi
}

# The fixture's context is 2048 tokens: the answer gets what the prompt leaves (the invoice
# schema's prompt takes 1271). Random weights rarely close a string, so values are held to 8 bytes
# (--max-value-bytes) and every answer completes within its --max-tokens.
for row in invoice.pdf:invoice:1:600 invoice_screenshot.png:invoice:1:600 \
           cn_vat_invoice.png:invoice:1:600 lab_report.tiff:lab_report:2:900 \
           nameplate.jpg:nameplate:1:600; do
  IFS=: read -r file schema pages max_tokens <<<"$row"
  out="$tmp/${file%.*}.json"
  "$bin" extract "$src/samples/$file" --schema "$schema" --model "$model" --threads 2 \
    --max-tokens "$max_tokens" --ctx 2048 --max-value-bytes 8 --out "$out" 2>"$tmp/err"; rc=$?
  check "$file: exit 0 ($(cat "$tmp/err"))" test $rc -eq 0
  check "$file: nothing on stderr when it is not a terminal" test ! -s "$tmp/err"
  sha=$(sha256sum "$src/samples/$file" | cut -d' ' -f1)
  check "$file: result shape and provenance" python3 - "$out" "$src/schemas/$schema.yaml" \
    "$sha" "$pages" "$schema" <<'PY'
import json, os, re, sys
result_path, schema_path, sha, pages, schema = sys.argv[1:]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(schema_path)), "tests"))
from schema_keys import schema_keys
r = json.load(open(result_path))
assert r["status"] in ("ok", "needs_review"), r["status"]
assert r["schema"] == {"name": schema, "version": "1"}, r["schema"]
src = r["source"]
assert src["sha256"] == sha and src["pages"] == int(pages), src
assert r["model"]["id"].startswith("unpinned@sha256:"), r["model"]
assert re.fullmatch("[0-9a-f]{64}", r["model"]["weights_sha256"]), r["model"]
assert r["device"] == "cpu"
assert list(r["timings_s"]) == ["ingest", "layout", "prefill", "decode", "validate"], r
# One page per prompt (the shipped schemas' policy): every value knows its page (a list of line
# items as a whole has none; each item's values do).
assert all(isinstance(f["value"], list) or 1 <= f["page"] <= int(pages)
           for f in r["fields"].values()), r["fields"]
# Every top-level key of the schema is in data, in order (read from the YAML's field list).
keys = schema_keys(schema_path)
assert list(r["data"]) == keys, (list(r["data"]), keys)
# Values were held to 8 bytes; normalisation (an ISO 8601 date, upper case) may lengthen one a
# little, never to the 512 bytes of the default.
def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)
long = [s for s in strings(r["data"]) if len(s.encode()) > 32]
assert not long, long
PY
done

"$bin" extract "$src/samples/nameplate.jpg" --schema nameplate --model "$model" \
  --max-tokens 600 --ctx 2048 --max-value-bytes 8 >"$tmp/stdout" 2>/dev/null
check "stdout result parses" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/stdout"

: >"$tmp/empty.png"
"$bin" extract "$tmp/empty.png" --schema nameplate --model "$model" --out "$tmp/empty.json" \
  2>"$tmp/err"; rc=$?
check "empty file exits 2" test $rc -eq 2
check "one error line" test "$(wc -l <"$tmp/err")" -eq 1
check "error names the file" grep -q "empty.png" "$tmp/err"
check "no --out file for a refused document" test ! -e "$tmp/empty.json"

"$bin" extract "$src/samples/nameplate.jpg" --schema nameplate --model "$model" --device cuda \
  2>"$tmp/err" >/dev/null; rc=$?
check "--device cuda without a usable device exits 2" test $rc -eq 2
"$bin" extract "$src/samples/nameplate.jpg" --schema no_such_schema --model "$model" \
  2>/dev/null; rc=$?
check "unknown schema exits 2" test $rc -eq 2

# An answer cut off by --max-tokens: exit 1, and the failed result is still written.
"$bin" extract "$src/samples/nameplate.jpg" --schema nameplate --model "$model" --max-tokens 3 \
  --ctx 2048 --out "$tmp/cut.json" 2>"$tmp/err"; rc=$?
check "a cut-off answer exits 1" test $rc -eq 1
check "a cut-off answer says so" grep -q "cut off" "$tmp/err"
check "a cut-off answer still has a failed result" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "failed" and "cut off" in r["error"] and r["data"] is None, r' "$tmp/cut.json"

"$src/tools/score" --expected "$src/samples/expected" "$tmp/nameplate.json" >"$tmp/score"
check "score prints its table" grep -q "^overall " "$tmp/score"
check "score lists serial_number" grep -q "^serial_number " "$tmp/score"
check "score takes every sample's result" "$src/tools/score" --expected "$src/samples/expected" \
  "$tmp/invoice.json" "$tmp/invoice_screenshot.json" "$tmp/cn_vat_invoice.json" \
  "$tmp/lab_report.json" "$tmp/nameplate.json" >/dev/null

# The ground truth scored against itself: every true value found, nothing extra; one changed
# value is one false positive and one false negative.
for file in invoice.pdf invoice_screenshot.png cn_vat_invoice.png lab_report.tiff nameplate.jpg; do
  stem=${file%.*}
  python3 - "$src/samples/expected/$stem.json" "$file" "$tmp/truth_$stem.json" \
    "$tmp/wrong_$stem.json" <<'PY'
import json, sys
truth_path, name, truth_out, wrong_out = sys.argv[1:]
data = json.load(open(truth_path))
json.dump({"source": {"name": name}, "data": data}, open(truth_out, "w"))
def change_one(v):  # the first non-null scalar, replaced by a value no truth holds
    for k, x in (v.items() if isinstance(v, dict) else enumerate(v)):
        if isinstance(x, (dict, list)):
            if change_one(x):
                return True
        elif x is not None:
            v[k] = "intake-e2e-wrong"
            return True
    return False
assert change_one(data)
json.dump({"source": {"name": name}, "data": data}, open(wrong_out, "w"))
PY
  "$src/tools/score" --expected "$src/samples/expected" "$tmp/truth_$stem.json" >"$tmp/score"
  check "$stem: truth scores fp 0 fn 0" awk '$1 == "overall" { ok = $2 > 0 && $3 == 0 && $4 == 0 }
    END { exit !ok }' "$tmp/score"
  "$src/tools/score" --expected "$src/samples/expected" "$tmp/wrong_$stem.json" >"$tmp/score"
  check "$stem: one wrong value scores fp 1 fn 1" awk '$1 == "overall" {
    ok = $3 == 1 && $4 == 1 } END { exit !ok }' "$tmp/score"
done

exit $fail
