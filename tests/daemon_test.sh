#!/usr/bin/env bash
# The real intaked on temporary directories. One scenario per run (daemon_test.sh SCENARIO), so
# CTest runs and times them separately. Inputs are tiny PNGs whose pixels encode their index, so
# every input has its own SHA-256; accounting compares the inputs' hashes with the "source"
# hashes found in results, duplicate notices and quarantine records (computed here, not by the
# daemon).
set -u
scenario=${1:?scenario}
bin="$INTAKE_BIN_DIR/intaked"
tmp=$(mktemp -d /tmp/intaked-test.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # The crashpoints scenario's tmpfs mounts (in its own mount namespace, gone with it anyway).
  mountpoint -q "$tmp" 2>/dev/null && umount -R "$tmp"
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if ! "$@"; then echo "FAIL: $what"; fail=1; fi
}
export LSAN_OPTIONS=${LSAN_OPTIONS:-}

mkdir -p "$tmp/in/a" "$tmp/stage"
write_config() { # write_config [extra yaml lines...]
  {
    echo "inboxes:"
    echo "  - path: in/a"
    printf '%s\n' "$@"
    echo "outbox: out"
    echo "archive: ${archive_dir:-archive}"
    echo "failed: ${failed_dir:-failed}"
    echo "state: state"
    echo "stability: ${stability:-300ms}"
    echo "rescan_interval: 3s"
    echo "workers: 2"
    echo "max_claimed: 200"
    echo "spool_min_free: 0"
    echo "retry: {backoff: 200ms, max_backoff: 1s}"
  } >"$tmp/intake.yaml"
}
write_config

# make_pngs DIR FIRST COUNT: files DIR/doc-N.png, N from FIRST, each with distinct pixels.
make_pngs() {
  python3 - "$@" <<'EOF'
import struct, sys, zlib
d, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
for n in range(first, first + count):
    w, h = 8, 4
    row = bytes([n & 255, (n >> 8) & 255, (n >> 16) & 255] * w)
    raw = b"".join(b"\0" + row for _ in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    open(f"{d}/doc-{n}.png", "wb").write(png)
EOF
}

# account: prints "results duplicates failed missing extra" for the inputs hashed in
# $tmp/inputs.sha (sha256sum format), reading every published file.
account() {
  python3 - "$tmp" <<'EOF'
import glob, json, os, sys
t = sys.argv[1]
inputs = {}
for line in open(f"{t}/inputs.sha"):
    sha, name = line.split()
    inputs[sha] = name
seen = {}
res = dup = bad = 0
for f in glob.glob(f"{t}/out/*/*.json"):
    d = json.load(open(f))
    sha = d["source"]["sha256"]
    seen[sha] = seen.get(sha, 0) + 1
    if f.endswith(".duplicate.json"): dup += 1
    else: res += 1
for f in glob.glob(f"{t}/failed/*/*.error.json"):
    d = json.load(open(f))
    seen[d["sha256"]] = seen.get(d["sha256"], 0) + 1
    bad += 1
missing = sum(1 for s in inputs if s not in seen)
extra = sum(n - 1 for n in seen.values() if n > 1) + sum(1 for s in seen if s not in inputs)
print(res, dup, bad, missing, extra)
EOF
}

# Scenarios that make parser children misbehave need a test build (INTAKE_TEST_HOOKS).
needs_hooks() { "$bin" --version | grep -q "test hooks" || { echo "skipped: no test hooks"; exit 77; }; }

hash_inputs() { (cd "$tmp/stage" && sha256sum -- *) >>"$tmp/inputs.sha"; }

start() {
  (cd "$tmp" && exec "$bin" --config intake.yaml "$@" >>"$tmp/log" 2>&1) &
  pid=$!
}
stop() { # stop [SIGNAL]: signal the daemon and wait for it; its exit status goes to $rc
  kill -"${1:-TERM}" "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  pid=""
}
published() { find "$tmp/out" "$tmp/failed" -name '*.json' 2>/dev/null | grep -vc '/\.intake-'; }
wait_published() { # wait_published N SECONDS [INTERVAL]
  local n=$1 deadline=$((SECONDS + $2))
  while [ "$(published)" -lt "$n" ] && [ $SECONDS -lt $deadline ]; do sleep "${3:-0.1}"; done
  [ "$(published)" -ge "$n" ]
}
no_leftovers() { # nothing in the inbox, the spool or temporary names in the outbox
  local left
  left=$(find "$tmp/in" "$tmp/state/spool" "$tmp/out" -type f -path '*/in/*' -o -type f \
    -path '*/spool/*' -o -name '.intake-*')
  [ -z "$left" ] || { echo "left over: $left"; return 1; }
}

case "$scenario" in
delivery) # cp, mv, rename from .part, a slow writer that closes and reopens, a symlink
  start
  make_pngs "$tmp/stage" 1 4
  hash_inputs
  cp "$tmp/stage/doc-1.png" "$tmp/in/a/"
  mv "$tmp/stage/doc-2.png" "$tmp/in/a/"
  cp "$tmp/stage/doc-3.png" "$tmp/in/a/doc-3.png.part"
  sleep 1 # a .part file is never taken, however long it sits
  check ".part ignored" test "$(published)" -eq 2
  mv "$tmp/in/a/doc-3.png.part" "$tmp/in/a/doc-3.png"
  # Slow writer: five pieces, the file closed and reopened between them, 0.25 s apart.
  python3 - "$tmp/stage/doc-4.png" "$tmp/in/a/doc-4.png" <<'EOF'
import sys, time
data = open(sys.argv[1], "rb").read()
step = (len(data) + 4) // 5
for i in range(0, len(data), step):
    with open(sys.argv[2], "ab") as f:
        f.write(data[i:i + step])
    time.sleep(0.25)
EOF
  ln -s /etc/passwd "$tmp/in/a/link.png"
  check "four results" wait_published 4 20
  # A symlink makes no close or move event: the periodic rescan (3 s here) finds it.
  for ((i = 0; i < 80; i++)); do grep -q "'link.png' is never taken" "$tmp/log" && break; sleep 0.1; done
  rm "$tmp/in/a/link.png"
  stop TERM
  check "exit 0 on SIGTERM" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "4 results, each input once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "4 0 0 0 0"
  check "slow writer taken whole" grep -q "doc-4.png" "$tmp/inputs.sha"
  check "symlink refused" grep -q "'link.png' is never taken" "$tmp/log"
  check "originals archived" test "$(ls "$tmp/archive/a" | wc -l)" -eq 4
  check "no leftovers" no_leftovers
  check "results 0640" test "$(stat -c %a "$(ls "$tmp"/out/a/*.json | head -1)")" = 640
  check "spool 0700" test "$(stat -c %a "$tmp/state/spool/active")" = 700
  ;;
burst) # 2,000 files at once, exactly once
  make_pngs "$tmp/stage" 1 2000
  hash_inputs
  start
  sleep 0.5
  t0=$SECONDS
  mv "$tmp"/stage/* "$tmp/in/a/"
  check "2000 published" wait_published 2000 240
  echo "burst: 2000 files in $((SECONDS - t0)) s"
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "2000 results exactly once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "2000 0 0 0 0"
  check "no leftovers" no_leftovers
  ;;
offline) # files dropped while the daemon is down, duplicates, a corrupt file, --once
  make_pngs "$tmp/stage" 1 5
  hash_inputs
  cp "$tmp"/stage/* "$tmp/in/a/"
  cp "$tmp/stage/doc-1.png" "$tmp/in/a/copy-of-1.png" # the same bytes again: a duplicate
  printf 'this is not a document\n' >"$tmp/in/a/corrupt.pdf"
  (cd "$tmp/in/a" && sha256sum corrupt.pdf) >>"$tmp/inputs.sha"
  (cd "$tmp" && timeout 60 "$bin" --config intake.yaml --once >>"$tmp/log" 2>&1)
  check "--once exits 0" test $? -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  # doc-1's hash is counted twice (result and notice): extra is 1 by design here.
  check "5 results, 1 duplicate, 1 failed ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "5 1 1 0 1"
  check "failed original kept" test -f "$tmp/failed/a/corrupt.pdf"
  check "reason recorded" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reason"] == "unsupported format" and d["file"] == "corrupt.pdf", d' \
    "$tmp/failed/a/corrupt.pdf.error.json"
  check "notice names the first job's result" python3 -c '
import glob, json, sys
n = json.load(open(glob.glob(sys.argv[1] + "/out/a/*.duplicate.json")[0]))
first = json.load(open(sys.argv[1] + "/out/a/" + n["earlier_result"]))
assert n["duplicate_of"] == first["job"], (n, first)
assert {n["source"]["name"], first["source"]["name"]} == {"doc-1.png", "copy-of-1.png"}, (n, first)
assert first["format"] == "png" and first["pages"][0]["width"] == 8, first' "$tmp"
  check "no leftovers" no_leftovers
  ;;
signals) # sd_notify; SIGHUP reload adds an inbox; SIGTERM drains; a bad reload keeps the old config
  python3 - "$tmp/notify.sock" "$tmp/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "a") as log:
    try:
        while True:
            log.write(s.recv(4096).decode() + "\n")
            log.flush()
    except socket.timeout:
        pass
EOF
  listener=$!
  for ((i = 0; i < 50; i++)); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
  NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=400000 start
  sleep 1
  check "READY=1 sent" grep -q "^READY=1" "$tmp/notify.log"
  check "STATUS= sent" grep -q "^STATUS=queued 0, running 0, done 0" "$tmp/notify.log"
  check "WATCHDOG=1 pings" test "$(grep -c '^WATCHDOG=1' "$tmp/notify.log")" -ge 3
  make_pngs "$tmp/stage" 1 40
  hash_inputs
  mkdir -p "$tmp/in/b"
  write_config "  - path: in/b"
  kill -HUP "$pid"
  sleep 1
  check "reloaded" grep -q "configuration reloaded" "$tmp/log"
  mv "$tmp/stage/doc-1.png" "$tmp/in/b/"
  check "new inbox served" wait_published 1 20
  echo "bogus: [" >"$tmp/intake.yaml"
  kill -HUP "$pid"
  sleep 0.5
  check "bad reload refused" grep -q "reload failed; keeping the running configuration" "$tmp/log"
  mv "$tmp"/stage/* "$tmp/in/a/"
  sleep 1.5 # some claimed, some running
  stop TERM
  check "SIGTERM exit 0" test $rc -eq 0
  check "STOPPING=1 sent" grep -q "^STOPPING=1" "$tmp/notify.log"
  check "RELOADING=1 sent" grep -q "^RELOADING=1" "$tmp/notify.log"
  kill "$listener" 2>/dev/null
  check "no job left running" python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("select count(*) from jobs where state = 1").fetchone()[0] == 0' \
    "$tmp/state/journal.db"
  write_config "  - path: in/b"
  start
  check "all 40 after restart" wait_published 40 60
  stop TERM
  read -r res dup bad missing extra <<<"$(account)"
  check "40 results exactly once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "40 0 0 0 0"
  check "no leftovers" no_leftovers
  ;;
kill) # SIGKILL of the daemon and of its parser children at random moments, with restarts, over a
  # mixed corpus; every input has exactly its expected outcome. INTAKE_KILLS (50) kills in all,
  # INTAKE_KILL_FILES (300) files; prints files, kills, lost, duplicated, corrupt and the
  # longest time a restart took until READY=1.
  kills=${INTAKE_KILLS:-50}
  n_files=${INTAKE_KILL_FILES:-300}
  src=$(cd "$(dirname "$0")/.." && pwd)
  # Children killed count as attempts (a kill looks like a crash): enough attempts that no
  # document runs out of them here.
  write_config "retry: {attempts: 20, backoff: 200ms, max_backoff: 1s}"
  make_pngs "$tmp/stage" 1 $((n_files - 6))
  cp "$src/samples/invoice.pdf" "$src/samples/lab_report.tiff" "$src/samples/nameplate.jpg" \
    "$src/samples/invoice_screenshot.png" "$tmp/stage/"
  cp "$tmp/stage/doc-1.png" "$tmp/stage/again-1.png"
  # A PNG that looks whole (signature, IEND) but is not: refused as corrupt.
  python3 -c 'import sys; open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + b"\x5a" * 200 +
    b"\0\0\0\0IEND\xaeB`\x82")' "$tmp/stage/corrupt.png"
  hash_inputs
  # READY=1 times, for the recovery time of each start.
  touch "$tmp/ready.log"
  python3 - "$tmp/notify.sock" "$tmp/ready.log" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        if s.recv(4096).startswith(b"READY=1"):
            log.write(f"{time.time()}\n")
            log.flush()
EOF
  listener=$!
  for ((i = 0; i < 50; i++)); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
  mv "$tmp"/stage/* "$tmp/in/a/"
  by_daemon=0 by_child=0
  t0=$SECONDS
  while ((by_daemon + by_child < kills)); do
    echo "$EPOCHREALTIME" >>"$tmp/starts.log"
    NOTIFY_SOCKET="$tmp/notify.sock" start
    while ((by_daemon + by_child < kills)); do
      sleep "$(python3 -c "import random; print(random.uniform(0.05, 0.6))")"
      # Half the kills aim at a parser child: one is waited for (0.6 s at most; none is
      # running between documents), else the daemon is killed.
      children=()
      if ((RANDOM % 2)); then
        for ((w = 0; w < 30 && ${#children[@]} == 0; w++)); do
          mapfile -t children < <(pgrep -P "$pid")
          ((${#children[@]})) || sleep 0.02
        done
      fi
      if ((${#children[@]})); then
        kill -KILL "${children[RANDOM % ${#children[@]}]}" 2>/dev/null && by_child=$((by_child + 1))
      else
        { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null
        pid=""
        by_daemon=$((by_daemon + 1))
        break
      fi
    done
  done
  [ -n "$pid" ] && stop TERM
  # The last start runs until every file has its record (not --once: it would leave a job
  # backing off after a killed child for the next start).
  echo "$EPOCHREALTIME" >>"$tmp/starts.log"
  readies=$(wc -l <"$tmp/ready.log")
  NOTIFY_SOCKET="$tmp/notify.sock" start
  # Its SIGTERM handler is in place once it is ready.
  for ((i = 0; i < 300; i++)); do
    [ "$(wc -l <"$tmp/ready.log")" -gt "$readies" ] && break
    sleep 0.1
  done
  check "every file published after the last start" \
    wait_published "$n_files" $((n_files / 2 + 120)) 0.5
  stop TERM
  check "last stop exits 0" test $rc -eq 0
  kill "$listener"
  wait "$listener" 2>/dev/null
  # The ledger: PNG, PDF, TIFF, JPEG a result; doc-1 and its copy one result and one duplicate
  # notice; the corrupt file a quarantine record. lost: no record; duplicated: a record more
  # than expected; corrupt: a record that does not parse or carries another file's hash.
  read -r lost dups bad wrong crashed recovery readies <<<"$(python3 - "$tmp" <<'EOF'
import glob, json, sys
t = sys.argv[1]
sha = dict(reversed(line.split()) for line in open(f"{t}/inputs.sha"))
got, corrupt, crashed = {}, 0, 0
for pattern, kind in ((f"{t}/out/a/*.json", None), (f"{t}/failed/a/*.error.json", "quarantine")):
    for f in glob.glob(pattern):
        try:
            d = json.load(open(f))
            src = d if kind else d["source"]
            name, h = src["file" if kind else "name"], src["sha256"]
        except (ValueError, KeyError, TypeError):
            corrupt += 1
            continue
        if sha.get(name) != h:
            corrupt += 1
            continue
        k = kind or ("duplicate" if f.endswith(".duplicate.json") else "result")
        # Parser children killed on every attempt: quarantined as crashed, by design.
        if kind and d["reason"] == "crashed" and name != "corrupt.png":
            crashed += 1
            k = "result"
        got.setdefault(name, []).append(k)
pair = ("doc-1.png", "again-1.png")
lost = dups = wrong = 0
for name in sha:
    kinds = got.get(name, [])
    lost += not kinds
    dups += max(0, len(kinds) - 1)
    want = "quarantine" if name == "corrupt.png" else None if name in pair else "result"
    wrong += bool(want and kinds and kinds[0] != want)
first = sorted(got[n][0] for n in pair if n in got)
wrong += len(first) == 2 and first != ["duplicate", "result"]
starts = [float(x) for x in open(f"{t}/starts.log")]
readies = sorted(float(x) for x in open(f"{t}/ready.log"))
recovery = []
for i, s in enumerate(starts):
    end = starts[i + 1] if i + 1 < len(starts) else float("inf")
    r = [x for x in readies if s <= x < end]
    if r:
        recovery.append(r[0] - s)
print(lost, dups, corrupt, wrong, crashed, f"{max(recovery):.2f}", f"{len(recovery)}/{len(starts)}")
EOF
)"
  echo "kill: $n_files files, $kills kills ($by_daemon daemon / $by_child children), $lost lost," \
    "$dups duplicated, $bad corrupt, $wrong wrong outcome ($crashed quarantined after every" \
    "attempt's child was killed); $readies starts reached READY," \
    "max recovery $recovery s ($((SECONDS - t0)) s)"
  check "nothing lost, duplicated, corrupt or misclassified" \
    test "$lost $dups $bad $wrong" = "0 0 0 0"
  check "journal integrity" python3 -c '
import sqlite3, sys
assert sqlite3.connect(sys.argv[1]).execute("pragma integrity_check").fetchone()[0] == "ok"' \
    "$tmp/state/journal.db"
  check "no leftovers" no_leftovers
  ;;
cli) # intake status and intake reprocess against the journal
  intake="$INTAKE_BIN_DIR/intake"
  make_pngs "$tmp/stage" 1 3
  cp "$tmp"/stage/* "$tmp/in/a/"
  printf 'not a document\n' >"$tmp/in/a/bad.pdf"
  (cd "$tmp" && timeout 60 "$bin" --config intake.yaml --once >>"$tmp/log" 2>&1)
  out=$("$intake" status --state "$tmp/state")
  check "status: inbox a has 3 done, 1 failed" grep -Eq '^a +0 +0 +3 +1 +0 +4 ' <<<"$out"
  check "status: last error names the reason" grep -q "unsupported format" <<<"$out"
  "$intake" reprocess --state "$tmp/state" >/dev/null 2>&1
  check "reprocess without a selection is refused" test $? -eq 2
  out=$("$intake" reprocess --state "$tmp/state" --no-wait doc-2.png)
  check "reprocess by name" grep -q "1 document queued" <<<"$out"
  out=$("$intake" reprocess --state "$tmp/state" --failed --no-wait)
  check "reprocess --failed" grep -q "1 document queued" <<<"$out"
  (cd "$tmp" && timeout 60 "$bin" --config intake.yaml --once >>"$tmp/log" 2>&1)
  out=$("$intake" status --state "$tmp/state")
  check "status after reprocessing: 3 done, 1 failed" grep -Eq '^a +0 +0 +3 +1 +0 ' <<<"$out"
  check "doc-2 has a second result" test "$(grep -l '"name": "doc-2.png"' "$tmp"/out/a/*.json | wc -l)" -eq 2
  check "originals back in place" test -f "$tmp/archive/a/doc-2.png" -a -f "$tmp/failed/a/bad.pdf"
  check "one error record" test "$(ls "$tmp"/failed/a/*.error.json | wc -l)" -eq 1
  check "no leftovers" no_leftovers
  ;;
sigstop) # manual (not in CTest): the daemon stopped by SIGSTOP while INTAKE_STOP_FILES (20,000)
  # files are moved in, far more than the inotify queue holds (fs.inotify.max_queued_events,
  # usually 16,384): after SIGCONT the overflow makes it list the inbox, and every file must
  # come out exactly once. Run: INTAKE_BIN_DIR=build/bin bash tests/daemon_test.sh sigstop
  n=${INTAKE_STOP_FILES:-20000}
  make_pngs "$tmp/stage" 1 "$n"
  hash_inputs
  start
  sleep 1
  kill -STOP "$pid"
  t0=$SECONDS
  find "$tmp/stage" -name '*.png' -exec mv -t "$tmp/in/a/" {} +
  echo "sigstop: $n files moved in while stopped ($((SECONDS - t0)) s)"
  t0=$SECONDS
  kill -CONT "$pid"
  check "$n published" wait_published "$n" $((n / 5 + 120)) 2
  echo "sigstop: $n files in $((SECONDS - t0)) s after SIGCONT; peak RSS $(grep VmHWM /proc/$pid/status)"
  check "overflow seen" grep -q "inotify queue overflowed" "$tmp/log"
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  echo "sigstop: $res results, $dup duplicates, $bad failed, $missing missing, $extra extra"
  check "$n results exactly once" test "$res $dup $bad $missing $extra" = "$n 0 0 0 0"
  check "no leftovers" no_leftovers
  ;;
timeout | crash) # a parser child that hangs (killed at the timeout) or crashes: retried, then quarantined
  needs_hooks
  write_config "limits: {parse_timeout: 1s}" "retry: {attempts: 2, backoff: 200ms, max_backoff: 1s}"
  make_pngs "$tmp/stage" 1 1
  hash_inputs
  INTAKE_TEST_PARSER=$([ "$scenario" = timeout ] && echo hang || echo crash) start
  mv "$tmp/stage/doc-1.png" "$tmp/in/a/"
  check "quarantined" wait_published 1 20
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "1 failed ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "0 0 1 0 0"
  check "first attempt retried" grep -q "attempt 1 of 2 failed" "$tmp/log"
  reason=$([ "$scenario" = timeout ] && echo timeout || echo crashed)
  check "reason $reason after 2 attempts" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reason"] == sys.argv[2] and d["attempts"] == 2, d' "$tmp/failed/a/doc-1.png.error.json" "$reason"
  check "original kept" test -f "$tmp/failed/a/doc-1.png"
  check "no leftovers" no_leftovers
  ;;
sandbox) # the parser child cannot write, delete, exec, open sockets or fork (probe in test builds)
  needs_hooks
  make_pngs "$tmp/stage" 1 1
  hash_inputs
  rm -f /tmp/intake-sandbox-probe
  INTAKE_TEST_PARSER=probe start
  mv "$tmp/stage/doc-1.png" "$tmp/in/a/"
  check "published" wait_published 1 20
  stop TERM
  check "8 probes, all blocked" test "$(grep -c 'sandbox probe: .*: blocked' "$tmp/log")" -eq 8
  check "nothing allowed" test "$(grep -c 'sandbox probe: .*: ALLOWED' "$tmp/log")" -eq 0
  check "no file created" test ! -e /tmp/intake-sandbox-probe -a -z "$(find "$tmp/state" -name '*.probe')"
  read -r res dup bad missing extra <<<"$(account)"
  check "the document still parsed ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "1 0 0 0 0"
  ;;
transient) # the outbox unusable for a while: retried without using attempts, nothing lost, no busy loop
  make_pngs "$tmp/stage" 1 3
  hash_inputs
  start
  sleep 0.5
  rmdir "$tmp/out/a"
  : >"$tmp/out/a" # a file where the inbox's outbox folder should be: every publish fails
  mv "$tmp"/stage/* "$tmp/in/a/"
  sleep 5
  lines=$(grep -c "transient failure" "$tmp/log")
  # 3 jobs, backoff 0.2 s doubling to 1 s: at most about 6 retries each in 5 s.
  check "retried with backoff, not in a busy loop ($lines lines)" test "$lines" -ge 3 -a "$lines" -le 30
  check "nothing published yet" test "$(published)" -eq 0
  rm "$tmp/out/a"
  check "all 3 after the outbox is back" wait_published 3 20
  stop TERM
  read -r res dup bad missing extra <<<"$(account)"
  check "3 results exactly once ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "3 0 0 0 0"
  check "attempts untouched" python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
attempts, transient = db.execute("select max(attempts), min(transient) from jobs").fetchone()
assert attempts == 0 and transient >= 2, (attempts, transient)' "$tmp/state/journal.db"
  check "no leftovers" no_leftovers
  ;;
recreate) # the inbox deleted and created again: watched again
  make_pngs "$tmp/stage" 1 2
  hash_inputs
  start
  mv "$tmp/stage/doc-1.png" "$tmp/in/a/"
  check "first file" wait_published 1 20
  rm -rf "$tmp/in/a"
  sleep 0.5
  mkdir "$tmp/in/a"
  sleep 1.5 # the lost inbox is looked for every second
  cp "$tmp/stage/doc-2.png" "$tmp/in/a/" # cp: a close event, seen only if watched again
  check "file in the re-created inbox" wait_published 2 3 # under the 3 s rescan
  stop TERM
  check "watch lost and found" grep -q "directory deleted or moved" "$tmp/log"
  check "watched twice" test "$(grep -c "inbox 'a': watching" "$tmp/log")" -eq 2
  read -r res dup bad missing extra <<<"$(account)"
  check "2 results ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "2 0 0 0 0"
  ;;
poll) # an inbox configured as polled: no inotify, found by listing every poll_interval
  {
    echo "inboxes:"
    echo "  - {path: in/a, watch: poll}"
    echo "outbox: out"
    echo "state: state"
    echo "stability: 300ms"
    echo "poll_interval: 500ms"
    echo "rescan_interval: 1h"
    echo "spool_min_free: 0"
  } >"$tmp/intake.yaml"
  make_pngs "$tmp/stage" 1 3
  hash_inputs
  start
  cp "$tmp"/stage/* "$tmp/in/a/"
  check "3 results" wait_published 3 10
  stop TERM
  check "polled" grep -q "inbox 'a': polling" "$tmp/log"
  read -r res dup bad missing extra <<<"$(account)"
  check "3 results exactly once ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "3 0 0 0 0"
  ;;
oversize) # over max_file_bytes: refused at claim, never copied into the spool
  write_config "limits: {max_file_bytes: 1M}"
  make_pngs "$tmp/stage" 1 1
  head -c 3000000 /dev/zero >"$tmp/stage/big.pdf"
  hash_inputs
  start
  mv "$tmp"/stage/* "$tmp/in/a/"
  check "2 published" wait_published 2 20
  stop TERM
  read -r res dup bad missing extra <<<"$(account)"
  check "1 result, 1 refused ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "1 0 1 0 0"
  check "reason: file too large" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reason"] == "file too large" and d["size"] == 3000000 and "1048576" in d["error"], d' \
    "$tmp/failed/a/big.pdf.error.json"
  check "the original moved to failed" test "$(stat -c %s "$tmp/failed/a/big.pdf")" -eq 3000000
  check "never copied into the spool" test -z "$(grep "'big.pdf': claimed" "$tmp/log")"
  check "no leftovers" no_leftovers
  ;;
syscalls) # every system call of the daemon and its parser children passes the unit's SystemCallFilter=
  command -v strace >/dev/null && command -v systemd-analyze >/dev/null ||
    { echo "skipped: needs strace and systemd-analyze"; exit 77; }
  src=$(cd "$(dirname "$0")/.." && pwd)
  # Inbox b has a schema: the model's worker thread (and its engine threads) are traced too.
  mkdir -p "$tmp/in/b"
  write_config "  - {path: in/b, schema: invoice}" "model: $src/tests/fixtures/tiny-glm4v" \
    "schemas: $src/schemas" "max_tokens: 600" "context: 2048"
  cp "$src"/samples/*.pdf "$src"/samples/*.png "$src"/samples/*.tiff "$src"/samples/*.jpg "$tmp/in/a/"
  cp "$src/samples/invoice.pdf" "$tmp/in/b/"
  n=$(find "$tmp/in" -type f | wc -l)
  # LeakSanitizer cannot work under ptrace.
  (cd "$tmp" && ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 timeout 120 \
    strace -f -qq -c -o "$tmp/strace.txt" "$bin" --config intake.yaml --once >>"$tmp/log" 2>&1)
  check "--once under strace exits 0" test $? -eq 0
  check "$n results" test "$(ls "$tmp"/out/[ab]/*.json | wc -l)" -eq "$n"
  check "every call allowed by the unit" python3 "$src/tests/unit_syscalls.py" "$tmp/strace.txt" \
    "$src/systemd/intaked.service"
  ;;
schema) # a schema inbox: the tiny fixture model (loaded once, in the daemon) extracts from the
  # pages the sandboxed child decoded; the model directory missing at first and (test builds)
  # the engine out of memory on the first extraction are transient failures
  src=$(cd "$(dirname "$0")/.." && pwd)
  mkdir -p "$tmp/in/b"
  {
    echo "inboxes:"
    echo "  - {path: in/a, schema: invoice}"
    echo "  - {path: in/b}"
    echo "outbox: out"
    echo "state: state"
    echo "model: model" # not there yet
    echo "schemas: $src/schemas"
    echo "max_tokens: 600"
    echo "context: 2048"
    echo "stability: 300ms"
    echo "spool_min_free: 0"
    echo "retry: {backoff: 200ms, max_backoff: 1s}"
  } >"$tmp/intake.yaml"
  cp "$src/samples/invoice.pdf" "$src/samples/invoice_screenshot.png" "$tmp/stage/"
  make_pngs "$tmp/stage" 1 1
  hash_inputs
  INTAKE_TEST_MODEL=oom:1 start
  mv "$tmp/stage/doc-1.png" "$tmp/in/b/"
  mv "$tmp/stage/invoice.pdf" "$tmp/stage/invoice_screenshot.png" "$tmp/in/a/"
  check "the pages inbox is served without a model" wait_published 1 20
  sleep 1
  check "no model yet: transient" grep -q "transient failure, retry in .*model" "$tmp/log"
  cp -r "$src/tests/fixtures/tiny-glm4v" "$tmp/model"
  check "3 results once the model is there" wait_published 3 120
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "3 results exactly once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "3 0 0 0 0"
  check "model loaded once" test "$(grep -c "model: .* loaded on cpu" "$tmp/log")" -eq 1
  if "$bin" --version | grep -q "test hooks"; then
    check "engine out of memory: transient" \
      grep -q "transient failure, retry in .*: model: out of memory" "$tmp/log"
  fi
  check "schema-shaped results" python3 - "$tmp" "$src/schemas/invoice.yaml" <<'EOF'
import glob, json, re, sys
t, schema_path = sys.argv[1:]
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
results = [json.load(open(f)) for f in glob.glob(f"{t}/out/a/*.json")]
assert sorted(r["source"]["name"] for r in results) == ["invoice.pdf", "invoice_screenshot.png"]
for r in results:
    assert r["schema"]["name"] == "invoice", r["schema"]
    # Random weights may talk until max_tokens: then `failed`, data null, error says so.
    if r["status"] == "failed":
        assert r["data"] is None and "cut off" in r["error"], r
    else:
        assert r["status"] in ("ok", "needs_review") and list(r["data"]) == keys, r
    assert r["model"]["id"].startswith("unpinned@sha256:"), r["model"]
    assert re.fullmatch(r"\d{10}-[0-9a-f]{12}", r["job"]), r["job"]
    assert glob.glob(f"{t}/out/a/{r['job']}.json"), r["job"]
pages = [json.load(open(f)) for f in glob.glob(f"{t}/out/b/*.json")]
assert pages[0]["processor"] == "pages" and pages[0]["schema"] is None, pages[0]
EOF
  check "attempts untouched" python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("select max(attempts) from jobs").fetchone()[0] == 0' "$tmp/state/journal.db"
  check "no leftovers" no_leftovers
  ;;
crashpoints) # kill at every named crash point (1st, 2nd, 3rd time), restart, check the invariant;
  # crash the restart too; the cross-file-system settling and the reprocess path. Prints points
  # listed, points reached and crashed at, daemon runs and violations.
  needs_hooks
  # settle-copy.* need archive/ and failed/ on another file system than the inbox and spool: the
  # scenario starts again in a private mount namespace and mounts a tmpfs there (gone with it).
  # The work folder is a tmpfs too: SIGKILL leaves the page cache intact, so the file system
  # does not change what is tested, and without real fsyncs the runs are 2-3 times faster.
  if [ -z "${INTAKE_CRASH_NS:-}" ] && unshare -m --propagation private true 2>/dev/null; then
    rm -rf "$tmp"
    exec unshare -m --propagation private env INTAKE_CRASH_NS=1 bash "$0" "$scenario"
  fi
  other_fs=0
  if [ -n "${INTAKE_CRASH_NS:-}" ] && mount -t tmpfs -o size=64m,mode=0700 intake-work "$tmp" &&
    mkdir -p "$tmp/in/a" "$tmp/stage" "$tmp/xfs" &&
    mount -t tmpfs -o size=64m intake-xfs "$tmp/xfs"; then
    other_fs=1
  fi
  t0=$SECONDS
  mapfile -t points < <("$bin" --list-crash-points)
  check "crash points listed" test "${#points[@]}" -gt 0
  stability=0s # every file is in place before each run starts
  make_pngs "$tmp/stage" 1 3
  cp "$tmp/stage/doc-1.png" "$tmp/stage/dup.png"
  printf 'this is not a document\n' >"$tmp/stage/corrupt.png"
  (cd "$tmp/stage" && sha256sum -- *) >"$tmp/inputs.sha"
  declare -A reached=()
  runs=0 violations=0
  # use_fs same|other: archive/ and failed/ beside the spool, or on the tmpfs.
  use_fs() {
    if [ "$1" = other ]; then archive_dir=xfs/archive failed_dir=xfs/failed
    else archive_dir=archive failed_dir=failed; fi
    write_config
  }
  # fresh FILE...: empty folders, the named files of stage/ in the inbox.
  fresh() {
    (cd "$tmp" && rm -rf in out archive failed state log xfs/archive xfs/failed trace)
    mkdir -p "$tmp/in/a"
    for f in "$@"; do cp "$tmp/stage/$f" "$tmp/in/a/"; done
  }
  # once [VAR=VALUE...]: one --once run; its exit status in $ran. The braces' 2>/dev/null
  # silences bash's "Killed" job report, not the daemon's log.
  once() {
    { (cd "$tmp" && exec env "$@" timeout 60 "$bin" --config intake.yaml --once >>"$tmp/log" 2>&1)
      ran=$?; } 2>/dev/null
    runs=$((runs + 1))
  }
  # verdict: the invariant after a run that completed. Each dropped file has exactly the records
  # $expect names (result, duplicate, quarantine), each carrying its hash; each original is in
  # the archive (or failed) folder exactly once; every JSON file parses; the journal passes its
  # integrity check and has no job left unfinished, unsettled or with a reprocess request.
  verdict() {
    python3 - "$tmp" "$archive_dir" "$failed_dir" "$expect" <<'EOF2'
import glob, hashlib, json, os, sqlite3, sys
t, archive, failed, expect = sys.argv[1:]
want = dict(kv.split("=") for kv in expect.split())
sha = dict(reversed(line.split()) for line in open(f"{t}/inputs.sha"))
records = {}
for f in glob.glob(f"{t}/out/a/*.json"):
    d = json.load(open(f))
    kind = "duplicate" if f.endswith(".duplicate.json") else "result"
    records.setdefault(d["source"]["name"], []).append((kind, d["source"]["sha256"]))
for f in glob.glob(f"{t}/{failed}/a/*.error.json"):
    d = json.load(open(f))
    records.setdefault(d["file"], []).append(("quarantine", d["sha256"]))
problems = []
# "a.png|b.png=result+duplicate": the two files' records together, one each.
for group, kinds in want.items():
    names, kinds = group.split("|"), kinds.split("+")
    got = {name: records.pop(name, []) for name in names}
    if sorted(k for g in got.values() for k, _ in g) != sorted(kinds) or \
            any(len(g) != len(kinds) // len(names) for g in got.values()) or \
            any(h != sha[name] for name, g in got.items() for _, h in g):
        problems.append(f"{group}: {got}")
if records:
    problems.append(f"records for files never dropped: {records}")
kept = {}
for f in glob.glob(f"{t}/{archive}/a/*") + glob.glob(f"{t}/{failed}/a/*"):
    if not f.endswith(".error.json"):
        h = hashlib.sha256(open(f, "rb").read()).hexdigest()
        kept[h] = kept.get(h, 0) + 1
dropped = {}
for name in (n for group in want for n in group.split("|")):
    dropped[sha[name]] = dropped.get(sha[name], 0) + 1
if kept != dropped:
    problems.append(f"originals kept {kept}, dropped {dropped}")
db = sqlite3.connect(f"{t}/state/journal.db")
ok = db.execute("pragma integrity_check").fetchone()[0]
if ok != "ok":
    problems.append(f"journal integrity_check: {ok}")
# States: 0 queued, 1 running, 2 done, 3 duplicate, 4 failed, 5 reprocessed.
odd = db.execute("select name, state, settled, reprocess, dest from jobs where state < 2 or "
                 "(state < 5 and settled = 0) or reprocess != 0 or (state = 5 and dest != '')"
                 ).fetchall()
if odd:
    problems.append(f"journal: unfinished jobs {odd}")
print("; ".join(problems))
sys.exit(1 if problems else 0)
EOF2
  }
  # judge WHAT: after the last run of a case, the invariant, else a violation.
  judge() {
    local v
    if [ $ran -ne 0 ] || ! v=$(verdict) || ! no_leftovers >/dev/null; then
      echo "VIOLATION at $1 (last run exited $ran): $v"
      no_leftovers
      tail -5 "$tmp/log"
      violations=$((violations + 1))
    fi
  }
  # A crash at X.before leaves the disk as the previous point's .after did, except where a
  # temporary file is being written (the three .fsync.before): the points where the state
  # differs. Crashes of the restart are made at those, and at the spool.discard-* points, which
  # only a restart reaches.
  distinct() { [[ $1 == *.after || $1 == *.fsync.before || $1 == spool.discard-* ]]; }
  # crash_at SETUP POINT N DEEP: SETUP, crash at the Nth time POINT is reached, restart (traced)
  # and judge. DEEP=1: then, for each distinct point the restart reached, the same first crash,
  # the restart crashed there (1st time), a third run, and judge. Fails when POINT was not
  # reached N times in the first run.
  crash_at() {
    local setup=$1 p=$2 n=$3 deep=$4 q
    $setup
    once INTAKE_CRASH_AT="$p:$n"
    if [ $ran -ne 137 ]; then
      [ $ran -eq 0 ] || { echo "$p:$n: first run exited $ran"; violations=$((violations + 1)); }
      return 1
    fi
    reached[$p]=1
    once INTAKE_CRASH_TRACE="$tmp/trace"
    judge "$p:$n"
    [ "$deep" -eq 1 ] || return 0
    local -a restart
    mapfile -t restart < <(awk '!seen[$0]++' "$tmp/trace")
    for q in "${restart[@]}"; do
      distinct "$q" || continue
      $setup
      once INTAKE_CRASH_AT="$p:$n"
      once INTAKE_CRASH_AT="$q:1"
      [ $ran -eq 137 ] && reached[$q]=1
      once
      judge "$p:$n, then the restart at $q:1"
    done
  }
  # 1. Every point, 1st-3rd time, over 3 PNGs, a copy of one and a corrupt file. The restart is
  # crashed too, after each distinct point, over one PNG: its restart then does only recovery
  # (and the copy's 0.5 s wait for its original would dominate the time).
  use_fs same
  setup_all() { fresh doc-1.png doc-2.png doc-3.png dup.png corrupt.png; }
  setup_two() { fresh doc-2.png corrupt.png; }
  setup_one() { fresh doc-2.png; }
  # doc-1 and its copy: which is the duplicate depends on the order they were claimed in.
  all="doc-1.png|dup.png=result+duplicate doc-2.png=result doc-3.png=result corrupt.png=quarantine"
  two="doc-2.png=result corrupt.png=quarantine"
  for point in "${points[@]}"; do
    case $point in settle-copy.* | journal.reprocess.* | reprocess.*) continue ;; esac
    expect=$all
    for n in 1 2 3; do crash_at setup_all "$point" $n 0 || break; done
    expect=doc-2.png=result
    distinct "$point" && crash_at setup_one "$point" 1 1
  done
  echo "crashpoints: same file system done ($((SECONDS - t0)) s, $runs runs)"
  # 2. The archive and failed folders on another file system: the copying settle.
  if [ $other_fs -eq 1 ]; then
    use_fs other
    for point in "${points[@]}"; do
      [[ $point == settle-copy.* ]] || continue
      expect=$two
      for n in 1 2 3; do crash_at setup_two "$point" $n 0 || break; done
      expect=doc-2.png=result
      distinct "$point" && crash_at setup_one "$point" 1 1
    done
    use_fs same
    echo "crashpoints: other file system done ($((SECONDS - t0)) s, $runs runs)"
  else
    echo "crashpoints: settle-copy.* skipped: cannot mount a tmpfs in a private mount namespace" \
      "(needs CAP_SYS_ADMIN)"
  fi
  # 3. Reprocess requests (intake reprocess, then the daemon): a done and a failed job taken
  # again from the archive and failed folders. After it, the done file has its two results, the
  # failed one its one quarantine record. The points of the request's own steps (the copy back
  # into the spool, the journal, removing the old copy; the restart crashed too after those of
  # reprocess.* and journal.reprocess.*); the new jobs' run and settling are the path section 1
  # covers.
  intake="$INTAKE_BIN_DIR/intake"
  setup_reprocess() {
    setup_two
    once
    "$intake" reprocess --state "$tmp/state" --no-wait doc-2.png >/dev/null &&
      "$intake" reprocess --state "$tmp/state" --no-wait --failed >/dev/null ||
      echo "setup_reprocess: intake reprocess failed"
  }
  expect="doc-2.png=result+result corrupt.png=quarantine"
  for point in "${points[@]}"; do
    case $point in
    claim.* | journal.update.* | journal.reprocess.* | reprocess.*) ;;
    *) continue ;;
    esac
    deep=0
    [[ $point == *reprocess* ]] && distinct "$point" && deep=1
    for n in 1 2 3; do crash_at setup_reprocess "$point" $n $deep || break; deep=0; done
  done
  echo "crashpoints: ${#points[@]} points, ${#reached[@]} reached and crashed at, $runs runs," \
    "$violations violations ($((SECONDS - t0)) s)"
  check "no violations" test $violations -eq 0
  ;;
*)
  echo "unknown scenario $scenario"
  exit 2
  ;;
esac
[ $fail -eq 0 ] || { echo "--- daemon log"; tail -40 "$tmp/log"; }
exit $fail
