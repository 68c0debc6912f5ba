#!/usr/bin/env bash
# End to end: `intake schema check` on the shipped schemas (exit 0) and on broken ones (exit 2,
# every problem printed as FILE:LINE:COLUMN: reason).
set -u
bin="$INTAKE_BIN_DIR/intake"
schemas="$INTAKE_SOURCE_DIR/schemas"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@"; then echo "FAIL: $what"; fail=1; fi
}

out=$("$bin" schema check "$schemas"/*.yaml); rc=$?
check "shipped schemas exit 0" test $rc -eq 0
check "one ok line per shipped schema" test "$(grep -c ': ok (schema' <<<"$out")" -eq 3

cat >"$tmp/broken.yaml" <<'YAML'
name: broken
version: 1
instruction: read it
fields:
  total:
    type: decimel
  code:
    type: string
    pattern: '(abc'
rules:
  - check: sum(items[].amount) == total
YAML
"$bin" schema check "$schemas/invoice.yaml" "$tmp/broken.yaml" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "a broken schema exits 2" test $rc -eq 2
check "the good one is still reported ok" grep -q "invoice.yaml: ok" "$tmp/out"
check "three problems, one line each" test "$(wc -l <"$tmp/err")" -eq 3
check "unknown type at 6:11" grep -qF "$tmp/broken.yaml:6:11: unknown type 'decimel'" "$tmp/err"
check "bad regex at 9:14 with PCRE2's reason" \
  grep -qF "$tmp/broken.yaml:9:14: bad pattern for field 'code': missing closing parenthesis at offset 4" "$tmp/err"
check "unknown field in a rule at 11:16" \
  grep -qF "$tmp/broken.yaml:11:16: rule references unknown field 'items'" "$tmp/err"

"$bin" schema check "$tmp/none.yaml" 2>"$tmp/err"; rc=$?
check "a missing file exits 2" test $rc -eq 2
check "a missing file is named" grep -q "none.yaml" "$tmp/err"
"$bin" schema 2>/dev/null; rc=$?
check "schema without check exits 2" test $rc -eq 2
check "intake schema --help" "$bin" schema --help >/dev/null

exit $fail
