#!/usr/bin/env bash
# The real intaked on temporary directories. One scenario per run (daemon_test.sh SCENARIO), so
# CTest runs and times them separately. Inputs are tiny PNGs whose pixels encode their index, so
# every input has its own SHA-256; accounting compares the inputs' hashes with the "source"
# hashes found in results, duplicate notices and quarantine records (computed here, not by the
# daemon).
set -u
scenario=${1:?scenario}
bin="$INTAKE_BIN_DIR/intaked"
# enospc and crashpoints mount tmpfs file systems: the script runs again in a mount namespace of
# its own, so the mounts go away with the test however it ends, and nothing outside sees them.
# Where that is not permitted enospc is skipped and crashpoints does without (see there).
if [[ $scenario == enospc || $scenario == crashpoints ]] && [ -z "${INTAKE_TEST_UNSHARED:-}" ]; then
  if unshare -m --propagation private true 2>/dev/null; then
    INTAKE_TEST_UNSHARED=1 exec unshare -m --propagation private bash "$0" "$@"
  fi
  [ "$scenario" = crashpoints ] ||
    { echo "skipped: cannot create a mount namespace (unshare -m needs CAP_SYS_ADMIN)"; exit 77; }
fi
tmp=$(mktemp -d /tmp/intaked-test.XXXXXX)
pid=""
mounts=() # unmounted before the directory is removed, last first
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  for ((m = ${#mounts[@]} - 1; m >= 0; m--)); do umount "${mounts[m]}"; done
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

as_user=() # a command prefix that runs the daemon as another user (perms, privacy)
start() {
  (cd "$tmp" && exec ${as_user[@]+"${as_user[@]}"} "$bin" --config intake.yaml "$@" >>"$tmp/log" 2>&1) &
  pid=$!
}
# unprivileged: as root (which ignores file modes) the daemon runs as nobody on a tree chowned to
# it; as another user it runs as that user. Skips when modes would not apply anyway.
unprivileged() {
  if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv >/dev/null || { echo "skipped: needs setpriv to drop root"; exit 77; }
    as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    chown -R nobody:nogroup "$tmp"
  fi
  : >"$tmp/modes-probe" && chmod 000 "$tmp/modes-probe"
  [ "$(id -u)" -ne 0 ] || chown nobody:nogroup "$tmp/modes-probe"
  if ${as_user[@]+"${as_user[@]}"} cat "$tmp/modes-probe" 2>/dev/null; then
    echo "skipped: file modes do not apply to the user the daemon would run as"
    exit 77
  fi
  rm -f "$tmp/modes-probe"
}
# cpu_ticks PID: user+system clock ticks of the process, then of its waited-for children
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13, $14 + $15}'; }
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
perms) # an unreadable input, an inbox the daemon cannot write, an outbox it cannot write:
  # one log line each, no busy loop, nothing lost or deleted; all exactly once after the fix
  unprivileged
  mkdir -p "$tmp/in/b" "$tmp/in/c" "$tmp/out/c"
  write_config "  - path: in/b" "  - path: in/c"
  make_pngs "$tmp/stage" 1 6
  hash_inputs
  cp "$tmp"/stage/doc-[12].png "$tmp/in/a/"
  cp "$tmp"/stage/doc-[34].png "$tmp/in/b/"
  cp "$tmp"/stage/doc-[56].png "$tmp/in/c/"
  [ "$(id -u)" -ne 0 ] || chown -R nobody:nogroup "$tmp"
  chmod 000 "$tmp/in/a/doc-1.png" # unreadable
  chmod 555 "$tmp/in/b" "$tmp/out/c" # the daemon owns them, but may not write them
  start
  check "the readable file and the claimed ones done" wait_published 3 20
  sleep 1
  read -r d0 c0 <<<"$(cpu_ticks "$pid")"
  s0=$(date +%s.%N)
  sleep 6
  read -r d1 c1 <<<"$(cpu_ticks "$pid")"
  s1=$(date +%s.%N)
  percent() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v a="$s0" -v b="$s1" 'BEGIN {printf "%.1f", 100 * t / hz / (b - a)}'; }
  cpu=$(percent $((d1 - d0 + c1 - c0)))
  l1=$(grep -c "'doc-1.png'.*Permission denied" "$tmp/log")
  l34=$(grep -c "'doc-[34].png'.*left in the inbox.*Permission denied" "$tmp/log")
  l56=$(grep -c "'doc-[56].png'.*transient failure.*Permission denied" "$tmp/log")
  lines=$(wc -l <"$tmp/log")
  echo "perms: stuck for 7 s: log lines doc-1 $l1, doc-3/4 $l34, doc-5/6 $l56 ($lines in all); CPU $cpu% over 6 s (daemon $(percent $((d1 - d0)))%, parser children $(percent $((c1 - c0)))%)"
  check "one line for the unreadable file ($l1)" test "$l1" -eq 1
  check "one line each for the files left in the inbox ($l34)" test "$l34" -eq 2
  check "one line each for the results that cannot be published ($l56)" test "$l56" -eq 2
  check "no busy loop: CPU $cpu% under 20%" awk -v c="$cpu" 'BEGIN {exit !(c < 20)}'
  check "nothing deleted that should stay" test -f "$tmp/in/a/doc-1.png" -a -f "$tmp/in/b/doc-3.png" -a -f "$tmp/in/b/doc-4.png"
  check "nothing published for c yet" test -z "$(ls "$tmp/out/c")"
  stop TERM
  # --once does not wait for files only a person can unstick.
  (cd "$tmp" && exec timeout 30 ${as_user[@]+"${as_user[@]}"} "$bin" --config intake.yaml --once >>"$tmp/log" 2>&1)
  check "--once exits 0 while files are stuck" test $? -eq 0
  start # stuck again, then fixed while it runs
  sleep 1.5
  chmod 644 "$tmp/in/a/doc-1.png"
  chmod 755 "$tmp/in/b" "$tmp/out/c"
  t0=$SECONDS
  check "all 6 after the fix" wait_published 6 40
  for ((i = 0; i < 200; i++)); do [ -z "$(ls "$tmp/in/b")" ] && break; sleep 0.1; done
  echo "perms: all delivered and the inbox emptied $((SECONDS - t0)) s after the fix"
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "6 results exactly once ($res $dup $bad $missing $extra)" test "$res $dup $bad $missing $extra" = "6 0 0 0 0"
  check "each original archived once" test "$(ls "$tmp"/archive/*/ | grep -c '\.png$')" -eq 6
  # Each of the three runs says it once, and nothing more after the fix.
  check "one line per file and run" test "$(grep -c "'doc-1.png'.*Permission denied" "$tmp/log") $(grep -c "'doc-[34].png'.*left in the inbox" "$tmp/log")" = "3 6"
  check "no leftovers" no_leftovers
  ;;
replace) # an input replaced by a new file of the same name (new inode) between its claim and its
  # removal from the inbox, at three moments (test builds hold the daemon there): after the
  # claim's commit, after the name was checked, and after the file took its private name; and
  # a file over max_file_bytes replaced before its move to the failed folder. The new version is
  # kept and processed too; each version has one result or quarantine record with its own hash.
  needs_hooks
  write_config "limits: {max_file_bytes: 100}" # the PNGs have 75 bytes
  make_pngs "$tmp/stage" 1 8
  head -c 300 /dev/zero | tr '\0' 'x' >"$tmp/stage/doc-7.png" # over the limit: refused at claim
  hash_inputs
  n=0
  : >>"$tmp/log"
  for point in journal.insert.after inbox.hide.before inbox.unlink.before inbox.hide.before; do
    n=$((n + 1))
    held="'$point' reached 1 times: stalling"
    before=$(grep -c "$held" "$tmp/log")
    INTAKE_STALL_AT="$point:1:2" start
    cp "$tmp/stage/doc-$((2 * n - 1)).png" "$tmp/in/a/x.png"
    for ((i = 0; i < 200; i++)); do [ "$(grep -c "$held" "$tmp/log")" -gt "$before" ] && break; sleep 0.05; done
    check "held at $point" test "$(grep -c "$held" "$tmp/log")" -gt "$before"
    mv "$tmp/stage/doc-$((2 * n)).png" "$tmp/in/a/x.png" # a new inode under the same name
    check "both versions published ($point)" wait_published $((2 * n)) 20
    stop TERM
    check "exit 0" test $rc -eq 0
  done
  read -r res dup bad missing extra <<<"$(account)"
  echo "replace: 4 replacements; $res results, $bad quarantined, $missing missing, $extra extra"
  check "7 results and 1 refused, exactly once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "7 0 1 0 0"
  # The refused file was overwritten by the replacing mv: only its record remains.
  check "the new version not moved to failed/" test ! -e "$tmp/failed/a/x.png"
  # At the third moment the claimed file already has its private name: nothing to notice.
  check "three replacements noticed" test "$(grep -c "a new file took its name" "$tmp/log")" -eq 3
  check "no leftovers" no_leftovers
  ;;
privacy) # canary strings in a PDF's text layer and metadata and in a PNG's tEXt chunk, through a
  # pages inbox, a schema inbox (the tiny fixture model) and a parser child that crashes: never
  # in the log, `intake status` or the state directory; modes as configured; no core dumps
  src=$(cd "$(dirname "$0")/.." && pwd)
  unprivileged
  mkdir -p "$tmp/in/b"
  cp -r "$src/tests/fixtures/tiny-glm4v" "$tmp/model"
  write_config "  - {path: in/b, schema: invoice}" "model: model" "schemas: $src/schemas" \
    "max_tokens: 600" "context: 2048"
  # Three canaries, one per place, sharing a prefix found nowhere else.
  python3 - "$tmp/stage" <<'EOF2'
import struct, sys, zlib
d = sys.argv[1]
def pdf(objects, trailer):
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R {trailer} >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return out
def canary_pdf(text, meta):
    content = f"BT /F1 14 Tf 20 60 Td (Patient {text} DOB 1970-01-01) Tj ET"
    return pdf(["<< /Type /Catalog /Pages 2 0 R >>",
                "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] "
                "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
                f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                f"<< /Title ({meta}) /Author ({meta}) /Subject ({meta}) >>"], "/Info 6 0 R")
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
open(f"{d}/record.pdf", "wb").write(canary_pdf("ZQXCANARY-PDFTEXT-4711", "ZQXCANARY-PDFMETA-4711"))
open(f"{d}/crashing.pdf", "wb").write(canary_pdf("ZQXCANARY-CRASHTEXT-4711", "ZQXCANARY-CRASHMETA-4711"))
raw = b"".join(b"\0" + bytes([200, 10, 10] * 8) for _ in range(4))
open(f"{d}/scan.png", "wb").write(
    b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 4, 8, 2, 0, 0, 0))
    + chunk(b"tEXt", b"Comment\0ZQXCANARY-PNGTEXT-4711") + chunk(b"IDAT", zlib.compress(raw))
    + chunk(b"IEND", b""))
EOF2
  hash_inputs
  [ "$(id -u)" -ne 0 ] || chown -R nobody:nogroup "$tmp"
  # Held after the first claim's commit, to see a spool file's mode while it exists.
  INTAKE_STALL_AT=journal.insert.after:1:2 start
  cp "$tmp/stage/record.pdf" "$tmp/stage/scan.png" "$tmp/in/a/"
  cp "$tmp/stage/record.pdf" "$tmp/in/b/"
  for ((i = 0; i < 100; i++)); do grep -q "stalling" "$tmp/log" && break; sleep 0.05; done
  spool_modes=$(find "$tmp/state/spool/active" -type f -printf '%m\n' | sort -u | tr '\n' ' ')
  check "a spool file exists, 0600 ($spool_modes)" test "$spool_modes" = "600 "
  check "daemon: no core file size" grep -Eq '^Max core file size +0 +0 ' "/proc/$pid/limits"
  # A process that is not dumpable has its /proc files owned by root whatever its own user.
  check "daemon: not dumpable" test "$(stat -c %u "/proc/$pid/status")" -eq 0 -a \
    "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" -ne 0
  check "3 results" wait_published 3 120
  stop TERM
  # A parser child that crashes on a canary document (quarantined after one attempt).
  write_config "  - {path: in/b, schema: invoice}" "model: model" "schemas: $src/schemas" \
    "retry: {attempts: 1, backoff: 200ms, max_backoff: 1s}"
  INTAKE_TEST_PARSER=crash start
  cp "$tmp/stage/crashing.pdf" "$tmp/in/a/"
  check "the crashing document quarantined" wait_published 4 30
  stop TERM
  check "crashed" grep -q "failed (crashed)" "$tmp/log"
  "$INTAKE_BIN_DIR/intake" status --state "$tmp/state" >"$tmp/status.txt" 2>&1
  log_hits=$(grep -c ZQXCANARY "$tmp/log")
  status_hits=$(grep -c ZQXCANARY "$tmp/status.txt")
  state_hits=$(grep -rl --binary-files=text ZQXCANARY "$tmp/state" | wc -l)
  out_hits=$(grep -rl --binary-files=text ZQXCANARY "$tmp/out" | wc -l)
  kept_hits=$(grep -rl --binary-files=text ZQXCANARY "$tmp/archive" "$tmp/failed" | wc -l)
  cores=$(find "$tmp" -name 'core*' -type f | wc -l) # the daemon's working directory is $tmp
  wrong=$(find "$tmp/out" "$tmp/failed" -name '*.json' -type f ! -perm 0640 | wc -l)
  wrong=$((wrong + $(find "$tmp/state" "$tmp/archive" "$tmp/failed" -type f ! -name '*.json' ! -perm 0600 | wc -l)))
  echo "privacy: canary hits: log $log_hits, status $status_hits, state directory $state_hits files" \
    "(journal and spool); cores $cores; files with the wrong mode $wrong; expected hits: $out_hits" \
    "result (the PDF's text layer), $kept_hits originals in archive/ and failed/"
  check "no canary in the log" test "$log_hits" -eq 0
  check "no canary in intake status" test "$status_hits" -eq 0
  check "no canary under the state directory" test "$state_hits" -eq 0
  check "the text layer did reach a result (the search works)" test "$out_hits" -ge 1
  check "the originals keep their canaries" test "$kept_hits" -eq 4
  check "no core file" test "$cores" -eq 0
  check "results and records 0640, spool, journal and originals 0600" test "$wrong" -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "4 documents, one quarantined" test "$res $bad" = "3 1"
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
  # the engine out of memory on the first extraction and its abort hook stopping the second
  # after a few decode steps are transient failures
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
  INTAKE_TEST_MODEL=oom:1,abort:1 start
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
    check "generation aborted mid-way: transient" \
      grep -q "transient failure, retry in .*: extract: generation aborted after 3 tokens" "$tmp/log"
  fi
  check "schema-shaped results" python3 - "$tmp" "$src/schemas/invoice.yaml" <<'EOF'
import glob, json, os, re, sys
t, schema_path = sys.argv[1:]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(schema_path)), "tests"))
from schema_keys import schema_keys
keys = schema_keys(schema_path)
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
  # settle-copy.* need archive/ and failed/ on another file system than the inbox and spool: a
  # tmpfs in the scenario's mount namespace (see the top). The work folder is a tmpfs too:
  # SIGKILL leaves the page cache intact, so the file system does not change what is tested, and
  # without real fsyncs the runs are 2-3 times faster.
  other_fs=0
  if [ -n "${INTAKE_TEST_UNSHARED:-}" ] && mount -t tmpfs -o size=64m,mode=0700 intake-work "$tmp"; then
    mounts+=("$tmp")
    mkdir -p "$tmp/in/a" "$tmp/stage" "$tmp/xfs"
    mount -t tmpfs -o size=64m intake-xfs "$tmp/xfs" && mounts+=("$tmp/xfs") && other_fs=1
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
  # verdict: the invariant after a run that completed (crash_invariant.py): each dropped file has
  # exactly the records $expect names, each carrying its hash; each original kept exactly once;
  # every JSON file parses; nothing left over; the journal's integrity check, and no job left
  # unfinished, unsettled or with a reprocess request.
  verdict() {
    python3 "$(dirname "$0")/crash_invariant.py" "$tmp" --expect "$expect" \
      --archive "$archive_dir" --failed "$failed_dir"
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
enospc) # the spool, the outbox and the archive on a small tmpfs that fills up during load:
  # claiming pauses, nothing partial is published, and everything comes out once space is freed
  mkdir -p "$tmp/small" "$tmp/out" "$tmp/archive" "$tmp/state/spool"
  mount -t tmpfs -o size=1m,mode=0700 intake-test "$tmp/small" 2>/dev/null ||
    { echo "skipped: mounting a tmpfs is not permitted here"; exit 77; }
  mounts+=("$tmp/small")
  # One file system seen at three places (the journal stays outside: a journal that cannot be
  # written stops the daemon by design). Moves between bind mounts copy (EXDEV), so settling a
  # job needs space in the archive too.
  for d in out archive state/spool; do
    mkdir -p "$tmp/small/$d"
    mount --bind "$tmp/small/$d" "$tmp/$d" && mounts+=("$tmp/$d")
  done
  make_pngs "$tmp/stage" 1 60
  hash_inputs
  mkdir "$tmp/stage2"
  mv "$tmp"/stage/doc-{41..60}.png "$tmp/stage2/"
  start
  sleep 0.5
  mv "$tmp"/stage/* "$tmp/in/a/"
  wait_published 10 20 0.02 # under load: some published, some being parsed, some waiting
  # The filler takes every free block: head stops at ENOSPC.
  head -c 2M /dev/zero 2>"$tmp/filler.err" >"$tmp/small/filler"
  check "the file system filled up" grep -q "No space left on device" "$tmp/filler.err"
  mv "$tmp"/stage2/* "$tmp/in/a/"
  for ((i = 0; i < 100; i++)); do grep -q "claiming paused" "$tmp/log" && break; sleep 0.05; done
  # From the first pause on, a file leaves the inbox only when claimed (the space a settled job
  # frees may let one in); the others stay as they were.
  (cd "$tmp/in/a" && sha256sum -- *) >"$tmp/stuck.sha"
  claims0=$(grep -c "claimed from" "$tmp/log")
  stuck=$(wc -l <"$tmp/stuck.sha")
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u0 s0 _ <"/proc/$pid/stat"
  lines0=$(wc -l <"$tmp/log")
  sleep 4
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u1 s1 _ <"/proc/$pid/stat"
  paused=$(grep -c "claiming paused" "$tmp/log")
  lines=$(($(wc -l <"$tmp/log") - lines0))
  cpu=$(((u1 + s1 - u0 - s0) * 100 / $(getconf CLK_TCK) / 4))
  transient=$(grep -c "transient failure" "$tmp/log")
  unsettled=$(grep -c "cannot move the original out of the spool, retry in" "$tmp/log")
  echo "enospc: full for 4 s with $stuck files waiting: $lines log lines ($paused claiming" \
    "pauses, $transient publications and $unsettled archivings retried), daemon CPU $cpu%"
  check "claiming paused" test "$paused" -ge 1
  # Backoff 0.2 s doubling to 1 s: a few lines per waiting job and per pause, not a busy loop.
  check "no busy loop ($lines log lines, $cpu% CPU in 4 s)" test "$lines" -le 400 -a "$cpu" -le 50
  check "inbox files untouched unless claimed" python3 - "$tmp" "$claims0" <<'EOF'
import hashlib, os, re, sys
t, claims0 = sys.argv[1], int(sys.argv[2])
claimed = re.findall(r"'([^']+)': claimed from", open(f"{t}/log").read())[claims0:]
for line in open(f"{t}/stuck.sha"):
    sha, name = line.split()
    path = f"{t}/in/a/{name}"
    if os.path.exists(path):
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == sha, name
    else:
        assert name in claimed, f"{name} left the inbox unclaimed"
EOF
  check "no copy left in the spool's claim folder" test -z "$(find "$tmp/state/spool/claim" -type f)"
  check "every result published so far is whole" python3 -c '
import glob, json, sys
for f in glob.glob(sys.argv[1] + "/out/a/*.json"):
    if not f.split("/")[-1].startswith(".intake-"):
        assert json.load(open(f))["source"]["sha256"], f' "$tmp"
  n=$(wc -l <"$tmp/log")
  rm "$tmp/small/filler"
  t0=$(date +%s%N)
  for ((i = 0; i < 400; i++)); do tail -n +$((n + 1)) "$tmp/log" | grep -q "claiming resumed" && break; sleep 0.02; done
  resume=$((($(date +%s%N) - t0) / 10000000))
  resume=$((resume / 100)).$(printf %02d $((resume % 100)))
  check "all 60 after space is freed" wait_published 60 60
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  echo "enospc: 60 files, $missing lost, $extra extra; claiming resumed ${resume} s after space was freed"
  check "60 results exactly once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "60 0 0 0 0"
  check "60 originals archived whole" \
    bash -c "cd '$tmp/archive/a' && sha256sum --quiet -c '$tmp/inputs.sha' && test \$(ls | wc -l) -eq 60"
  check "attempts untouched" python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("select max(attempts) from jobs").fetchone()[0] == 0' "$tmp/state/journal.db"
  check "no leftovers" no_leftovers
  ;;
eio) # EIO on fsync and ENOSPC on write injected into the spool and the outbox by faultshim.c:
  # each job redone from its spool copy, no fsync retried on a descriptor where it failed
  shim=${INTAKE_FAULTSHIM:-}
  [ -f "$shim" ] || { echo "skipped: no fault shim (INTAKE_FAULTSHIM names libfaultshim.so)"; exit 77; }
  # An ASan build refuses to start unless its runtime comes first in the library list ("ASan
  # runtime does not come first"): preload the runtime the binary links, then the shim. The
  # other way that works is ASAN_OPTIONS=verify_asan_link_order=0 with the shim alone.
  asan=$(ldd "$bin" | awk '$1 ~ /^libasan/ {print $3}')
  preload=${asan:+$asan:}$shim
  # The shim itself: a short write then ENOSPC, an injected EIO, and a second fsync on the same
  # descriptor logged as a retry (so the daemon's zero below can be trusted).
  mkdir "$tmp/shimcheck"
  INTAKE_FAULT="fsync:EIO:every=1,write:ENOSPC:every=1,path=$tmp/shimcheck,log=$tmp/shimcheck.log" \
    LD_PRELOAD=$shim python3 - "$tmp/shimcheck/f" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
assert os.write(fd, b"x" * 100) == 50
for call in (lambda: os.write(fd, b"x"), lambda: os.fsync(fd), lambda: os.fsync(fd)):
    try:
        call()
        raise SystemExit("a call did not fail")
    except OSError as e:
        assert e.errno in (errno.ENOSPC, errno.EIO), e
EOF
  check "shim: faults injected" test $? -eq 0
  check "shim: a retried fsync is seen" test "$(grep -c '^retry fsync' "$tmp/shimcheck.log")" -eq 1
  # 19 documents and a corrupt file, whose quarantine record is written under faults too.
  make_pngs "$tmp/stage" 1 19
  printf 'this is not a document\n' >"$tmp/stage/corrupt.pdf"
  hash_inputs
  mv "$tmp"/stage/* "$tmp/in/a/"
  INTAKE_FAULT="fsync:EIO:p=0.3,write:ENOSPC:p=0.1,seed=7,path=$tmp/state/spool,path=$tmp/out,path=$tmp/failed,log=$tmp/faults.log" \
    LD_PRELOAD=$preload start
  check "all 20 published" wait_published 20 60
  stop TERM
  check "exit 0" test $rc -eq 0
  read -r res dup bad missing extra <<<"$(account)"
  check "19 results and 1 quarantined, exactly once ($res $dup $bad $missing $extra)" \
    test "$res $dup $bad $missing $extra" = "19 0 1 0 0"
  check "the corrupt file quarantined for its content" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reason"] == "unsupported format" and d["attempts"] == 0, d' "$tmp/failed/a/corrupt.pdf.error.json"
  # Corrupt: a result that does not parse, or whose hash and page are not its own input's.
  corrupt=$(python3 - "$tmp" <<'EOF'
import glob, json, sys
t = sys.argv[1]
want = dict(reversed(line.split()) for line in open(f"{t}/inputs.sha"))
bad = 0
for f in glob.glob(f"{t}/out/a/*.json"):
    try:
        d = json.load(open(f))
        page = d["pages"][0]
        ok = d["source"]["sha256"] == want[d["source"]["name"]] and d["format"] == "png" \
            and (page["width"], page["height"]) == (8, 4)
    except (ValueError, KeyError, IndexError):
        ok = False
    bad += not ok
print(bad)
EOF
  )
  injected=$(grep -c '^inject' "$tmp/faults.log")
  eio=$(grep -c '^inject fsync EIO' "$tmp/faults.log")
  enospc=$(grep -c '^inject write ENOSPC' "$tmp/faults.log")
  retries=$(grep -c '^retry' "$tmp/faults.log")
  # A job redone: its run ended in a transient failure (the result could not be written or
  # fsynced) and it ran again from its spool copy.
  runs=$(grep -c "transient failure, retry" "$tmp/log")
  redone=$(grep "transient failure, retry" "$tmp/log" | awk '{print $5}' | sort -u | wc -l)
  pauses=$(grep -c "claiming paused" "$tmp/log")
  resettled=$(grep -c "cannot move the original out of the spool, retry" "$tmp/log")
  echo "eio: 20 files; $injected faults injected ($eio fsync EIO, $enospc write ENOSPC);" \
    "$redone jobs redone ($runs reruns), $pauses claims redone, $resettled settlings redone;" \
    "$corrupt corrupt outputs; $retries fsync retries"
  check "both kinds of fault injected ($eio $enospc)" test "$eio" -ge 5 -a "$enospc" -ge 1
  check "jobs redone from the spool ($redone)" test "$redone" -ge 1
  check "no corrupt output ($corrupt)" test "$corrupt" = 0
  check "no fsync retried after it failed ($retries)" test "$retries" -eq 0
  check "attempts untouched" python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("select max(attempts) from jobs").fetchone()[0] == 0' "$tmp/state/journal.db"
  check "no leftovers" no_leftovers
  ;;
*)
  echo "unknown scenario $scenario"
  exit 2
  ;;
esac
[ $fail -eq 0 ] || { echo "--- daemon log"; tail -40 "$tmp/log"; }
exit $fail
