#!/usr/bin/env bash
# End to end: `intake model info` and `intake model generate` on the tiny fixture (values from
# tests/fixtures/tiny-glm4v/README.md), including the trace dump and the errors.
set -u
bin="$INTAKE_BIN_DIR/intake"
model="$INTAKE_SOURCE_DIR/tests/fixtures/tiny-glm4v"
samples="$INTAKE_SOURCE_DIR/samples"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { local what=$1; shift; if ! "$@"; then echo "FAIL: $what"; fail=1; fi; }

out=$("$bin" model info "$model"); rc=$?
check "info exits 0" test $rc -eq 0
check "info architecture" grep -q "Glm4vForConditionalGeneration" <<<"$out"
check "info text tower" grep -q "2 layers, hidden 256, 8 heads (2 KV), head dim 32, MLP 352, vocab 1024" <<<"$out"
check "info parameters (416,448 + 1,395,712)" grep -q "1.812 M (vision 0.416 M, text 1.396 M)" <<<"$out"
check "info dtype" grep -q "weights dtype *BF16" <<<"$out"
check "info rope" grep -q "theta 500000, rotary dim 16, M-RoPE sections 2/3/3" <<<"$out"
check "info token ids" grep -q "image 1011, begin 1007, end 1008; stop 1000 1004 1006" <<<"$out"

"$bin" model generate "$model" --image "$samples/invoice_screenshot.png" --prompt "Total?" \
  --max-tokens 5 --trace "$tmp/trace" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "generate exits 0" test $rc -eq 0
check "generate reports its run" grep -Eq "1 image\(s\), [0-9]+ prompt tokens, [0-5] generated" "$tmp/err"
check "trace index lists the merger" grep -Pq "^vision.merger\t[0-9]+\t256$" "$tmp/trace/index.tsv"
rows=$(awk -F'\t' '$1 == "vision.merger" {print $2}' "$tmp/trace/index.tsv")
check "trace file holds rows x 256 floats" test "$(stat -c %s "$tmp/trace/vision.merger.f32")" -eq $((rows * 256 * 4))
check "trace has every text layer" grep -Pq "^text.layer.1\t" "$tmp/trace/index.tsv"

"$bin" model generate "$model" --prompt "Hi" --max-tokens 3 --temperature 0.8 --seed 7 >"$tmp/a" 2>/dev/null
"$bin" model generate "$model" --prompt "Hi" --max-tokens 3 --temperature 0.8 --seed 7 >"$tmp/b" 2>/dev/null
check "seeded sampling repeats" cmp -s "$tmp/a" "$tmp/b"

"$bin" model info "$tmp/nowhere" 2>"$tmp/err"; rc=$?
check "missing model exits 2" test $rc -eq 2
check "missing model names config.json" grep -q "config.json" "$tmp/err"
"$bin" model generate "$model" --prompt x --image "$tmp/nope.png" 2>"$tmp/err"; rc=$?
check "missing image exits 2" test $rc -eq 2
"$bin" model generate "$model" 2>/dev/null; rc=$?
check "generate without --prompt exits 2" test $rc -eq 2
"$bin" model generate "$model" --prompt x --temperature -1 2>/dev/null; rc=$?
check "bad temperature exits 2" test $rc -eq 2
exit $fail
