#!/usr/bin/env bash
# End to end: `intake model pull` and `intake model verify` against tests/hub_server.py, a
# loopback stand-in for the Hugging Face hub serving the tiny fixture (HF_ENDPOINT points intake
# at it; its first path segment picks a failure mode). Nothing here touches a real network.
# Expected hashes come from sha256sum and the fixture files, never from intake.
set -u
bin="$INTAKE_BIN_DIR/intake"
fixture="$INTAKE_SOURCE_DIR/tests/fixtures/tiny-glm4v"
repo=test-org/tiny-glm4v
tmp=$(mktemp -d)
log="$tmp/hub.log"
python3 "$INTAKE_SOURCE_DIR/tests/hub_server.py" "$repo" "$fixture" "$log" 120 >"$tmp/port" &
server=$!
trap 'kill $server 2>/dev/null; umount "$tmp/small" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
hub="http://127.0.0.1:$(cat "$tmp/port")"
unset HF_TOKEN HF_HUB_OFFLINE INTAKE_MODEL_DIR HTTPS_PROXY https_proxy
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@"; then echo "FAIL: $what"; fail=1; fi
}
pull() { # pull MODE DIR [ARGS...]: stdout in $tmp/out, stderr in $tmp/err, status in $rc
  local mode=$1 dir=$2; shift 2
  HF_ENDPOINT="$hub/$mode" "$bin" model pull "$repo" --dir "$dir" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
log_lines() { wc -l <"$log"; }
shard1=model-00001-of-00002.safetensors
shard2=model-00002-of-00002.safetensors
size1=$(stat -c %s "$fixture/$shard1")

# A clean pull through a first attempt cut off halfway through each shard: it resumes in the
# same run with a Range request, and the result verifies.
pull drop "$tmp/m"
check "pull exits 0" test $rc -eq 0
check "pull is quiet on stderr when not a terminal" test ! -s "$tmp/err"
for f in config.json generation_config.json preprocessor_config.json tokenizer.json \
  tokenizer_config.json chat_template.jinja model.safetensors.index.json $shard1 $shard2; do
  check "$f pulled intact" cmp -s "$fixture/$f" "$tmp/m/$f"
done
check "files the engine does not read are not pulled" test ! -e "$tmp/m/golden.safetensors"
check "the download directory is gone" test ! -e "$tmp/m/.intake-download"
check "resumed with a Range request" grep -q "\"/drop/cdn/.*\"range\": \"bytes=$((size1 / 2))-\"" "$log"
sent=$(python3 -c '
import json, sys
print(sum(e["bytes"] for e in map(json.loads, open(sys.argv[1])) if e["path"].startswith("/drop/cdn/")))' "$log")
total=$(( size1 + $(stat -c %s "$fixture/$shard2") ))
check "resume sent each shard once, not twice ($sent bytes for $total)" test "$sent" -eq "$total"
check "the manifest lists every file with the fixture's SHA-256" python3 -c '
import hashlib, json, os, sys
m = json.load(open(os.path.join(sys.argv[1], "intake-model.json")))
assert m["repo"] == "test-org/tiny-glm4v" and m["revision"] == "main", m
assert m["model_id"] == m["repo"] + "@" + m["commit"] and len(m["commit"]) == 40, m
assert len(m["files"]) == 9, m["files"]
for f in m["files"]:
    data = open(os.path.join(sys.argv[2], f["path"]), "rb").read()
    assert f["size"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest(), f
' "$tmp/m" "$fixture"
commit=$(python3 -c 'import hashlib; print(hashlib.sha1(b"tiny-glm4v fixture").hexdigest())')
"$bin" model verify "$tmp/m" >"$tmp/out"; rc=$?
check "verify exits 0" test $rc -eq 0
check "verify prints the pinned model id" grep -qx "model id: $repo@$commit" "$tmp/out"
check "verify checked 9 files and 56 tensors" grep -q "9 files" "$tmp/out"
check "verify counted the tensors" grep -q "56 tensors" "$tmp/out"

# Pulling again fetches no file: everything in place matches.
before=$(log_lines)
pull ok "$tmp/m"
check "second pull exits 0" test $rc -eq 0
check "second pull downloads nothing" test "$(tail -n +$((before + 1)) "$log" | grep -c resolve)" -eq 0

# Offline: what is there is verified and the server sees no request.
before=$(log_lines)
pull ok "$tmp/m" --offline
check "--offline exits 0" test $rc -eq 0
check "--offline prints the model id" grep -qx "model id: $repo@$commit" "$tmp/out"
HF_HUB_OFFLINE=1 HF_ENDPOINT="$hub/ok" "$bin" model pull "$repo" --dir "$tmp/m" >/dev/null 2>&1
check "HF_HUB_OFFLINE=1 exits 0" test $? -eq 0
pull ok "$tmp/empty" --offline
check "--offline without a pulled model exits 1" test $rc -eq 1
check "--offline without a pulled model says so" grep -q "no pulled model" "$tmp/err"
check "offline never connects" test "$(log_lines)" -eq "$before"

# A shard damaged on disk: verify and offline pull name it.
cp -r "$tmp/m" "$tmp/bad"
printf 'X' | dd of="$tmp/bad/$shard2" bs=1 seek=5000 conv=notrunc status=none
"$bin" model verify "$tmp/bad" >/dev/null 2>"$tmp/err"; rc=$?
check "verify of a damaged shard exits 1" test $rc -eq 1
check "verify names the damaged shard" grep -q "$shard2.*SHA-256 mismatch" "$tmp/err"
pull ok "$tmp/bad" --offline
check "offline pull of a damaged model exits 1" test $rc -eq 1

# An interrupted pull from an earlier run resumes from its .incomplete file.
mkdir -p "$tmp/r/.intake-download"
head -c 600000 "$fixture/$shard1" >"$tmp/r/.intake-download/$shard1.incomplete"
pull ok "$tmp/r"
check "resumed pull exits 0" test $rc -eq 0
check "resumed from byte 600000" grep -q '"/ok/cdn/.*"range": "bytes=600000-", .*"status": 206' "$log"
check "resumed shard intact" cmp -s "$fixture/$shard1" "$tmp/r/$shard1"

# A corrupted download: that file is removed, the others kept, no manifest; the next pull
# fetches only it.
pull corrupt "$tmp/c"
check "checksum mismatch exits 1" test $rc -eq 1
check "checksum mismatch message names the file" grep -q "'$shard2': checksum mismatch" "$tmp/err"
check "one error line" test "$(wc -l <"$tmp/err")" -eq 1
check "the bad file is removed" test ! -e "$tmp/c/$shard2" -a ! -e "$tmp/c/.intake-download/$shard2.incomplete"
check "the good shard is kept" cmp -s "$fixture/$shard1" "$tmp/c/$shard1"
check "no manifest after a failed pull" test ! -e "$tmp/c/intake-model.json"
before=$(log_lines)
pull ok "$tmp/c"
check "pull after a mismatch exits 0" test $rc -eq 0
check "only the bad shard is fetched again" test "$(tail -n +$((before + 1)) "$log" | grep -c '/resolve/')" -eq 1

# Gated repository: no token, a token without access, the right token (sent as Bearer).
pull gated "$tmp/g"
check "gated without a token exits 1" test $rc -eq 1
check "gated message mentions HF_TOKEN" grep -q "is gated (HTTP 401).*HF_TOKEN" "$tmp/err"
HF_TOKEN=hf_other pull gated "$tmp/g"
check "gated with another token exits 1" test $rc -eq 1
check "gated with another token says so" grep -q "token in HF_TOKEN has no access (HTTP 403)" "$tmp/err"
HF_TOKEN=hf_test_good pull gated "$tmp/g"
check "gated with the right token exits 0" test $rc -eq 0
check "the token is sent as a bearer token" grep -q '"auth": "Bearer hf_test_good"' "$log"

# Wrong revision, wrong repository, nothing listening.
pull ok "$tmp/x" --revision nope
check "wrong revision exits 1" test $rc -eq 1
check "wrong revision message" grep -q "revision 'nope' not found" "$tmp/err"
HF_ENDPOINT="$hub/ok" "$bin" model pull test-org/missing --dir "$tmp/x" >/dev/null 2>"$tmp/err"
check "wrong repository exits 1" test $? -eq 1
check "wrong repository message" grep -q "repository 'test-org/missing' not found" "$tmp/err"
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HF_ENDPOINT="http://127.0.0.1:$closed" "$bin" model pull "$repo" --dir "$tmp/x" >/dev/null 2>"$tmp/err"
check "connection refused exits 1" test $? -eq 1
check "connection refused message" grep -q "cannot connect (no network" "$tmp/err"

# Bad usage exits 2.
"$bin" model pull a b c 2>/dev/null
check "extra arguments exit 2" test $? -eq 2
"$bin" model pull not-a-repo --dir "$tmp/x" 2>/dev/null
check "a repository without OWNER/ exits 2" test $? -eq 2
"$bin" model frobnicate 2>/dev/null
check "unknown model subcommand exits 2" test $? -eq 2

# A directory copied by hand (no manifest) is checked structurally and is unpinned.
mkdir "$tmp/hand"
cp "$fixture"/{config.json,tokenizer.json,model.safetensors.index.json,$shard1,$shard2} "$tmp/hand"
"$bin" model verify "$tmp/hand" >"$tmp/out"; rc=$?
check "verify without a manifest exits 0" test $rc -eq 0
index_sha=$(sha256sum "$fixture/model.safetensors.index.json" | cut -d' ' -f1)
check "unpinned id hashes the index" grep -qx "model id: unpinned@sha256:$index_sha" "$tmp/out"
sed -i 's/"num_hidden_layers": *[0-9]*/"num_hidden_layers": 3/' "$tmp/hand/config.json"
"$bin" model verify "$tmp/hand" >/dev/null 2>"$tmp/err"; rc=$?
check "a config the weights do not match fails verify" test $rc -eq 1
check "the weights error names a tensor" grep -q "weights: " "$tmp/err"

# Disk full: a small tmpfs (needs root; skipped otherwise).
mkdir "$tmp/small"
if mount -t tmpfs -o size=1m tmpfs "$tmp/small" 2>/dev/null; then
  pull ok "$tmp/small/m"
  check "disk full exits 1" test $rc -eq 1
  check "disk full message" grep -q "disk full" "$tmp/err"
  check "no manifest on a full disk" test ! -e "$tmp/small/m/intake-model.json"
  umount "$tmp/small"
else
  echo "note: cannot mount a tmpfs (not root?): disk-full end-to-end case skipped"
fi

exit $fail
