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

# The fixture's context is 2048 tokens: the answer gets what the prompt leaves.
for pair in invoice.pdf:invoice:1 invoice_screenshot.png:invoice:1 cn_vat_invoice.png:invoice:1 \
            lab_report.tiff:lab_report:2 nameplate.jpg:nameplate:1; do
  IFS=: read -r file schema pages <<<"$pair"
  out="$tmp/${file%.*}.json"
  "$bin" extract "$src/samples/$file" --schema "$schema" --model "$model" --threads 2 \
    --max-tokens 600 --ctx 2048 --out "$out" 2>"$tmp/err"; rc=$?
  check "$file: exit 0 ($(cat "$tmp/err"))" test $rc -eq 0
  sha=$(sha256sum "$src/samples/$file" | cut -d' ' -f1)
  check "$file: result shape and provenance" python3 - "$out" "$src/schemas/$schema.yaml" \
    "$sha" "$pages" "$schema" <<'PY'
import json, re, sys
result_path, schema_path, sha, pages, schema = sys.argv[1:]
r = json.load(open(result_path))
assert r["status"] in ("ok", "needs_review"), r["status"]
assert r["schema"] == {"name": schema, "version": "1"}, r["schema"]
src = r["source"]
assert src["sha256"] == sha and src["pages"] == int(pages), src
assert r["model"]["id"].startswith("unpinned@sha256:"), r["model"]
assert re.fullmatch("[0-9a-f]{64}", r["model"]["weights_sha256"]), r["model"]
assert r["device"] == "cpu"
assert list(r["timings_s"]) == ["ingest", "layout", "prefill", "decode", "validate"], r
# Every top-level key of the schema is in data, in order (read from the YAML's field list).
keys, inside = [], False
for line in open(schema_path, encoding="utf-8"):
    if line.startswith("fields:"):
        inside = True
    elif inside and re.match(r"^\S", line):
        break
    elif inside:
        m = re.match(r"^  ([A-Za-z_][A-Za-z0-9_]*):\s*$", line)
        if m:
            keys.append(m.group(1))
assert list(r["data"]) == keys, (list(r["data"]), keys)
PY
done

"$bin" extract "$src/samples/nameplate.jpg" --schema nameplate --model "$model" \
  --max-tokens 600 --ctx 2048 >"$tmp/stdout" 2>/dev/null
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

"$src/tools/score" --expected "$src/samples/expected" "$tmp/nameplate.json" >"$tmp/score"
check "score prints its table" grep -q "^overall " "$tmp/score"
check "score lists serial_number" grep -q "^serial_number " "$tmp/score"

exit $fail
