#!/usr/bin/env bash
# Power loss at every fsync (manual; README.md here). The daemon's whole world (inbox, spool and
# journal, outbox, archive, failed) lives on lazyfs, a FUSE file system that keeps written data in
# memory until it is fsynced. A first run counts the fsyncs of one `intaked --once` over a small
# mixed corpus (3 PNGs, a copy of one, a corrupt file); then for k = 1..K: fresh state, lazyfs
# loses power at the k-th fsync (unsynced data dropped, every later operation EIO), the daemon is
# SIGKILLed, lazyfs unmounted and mounted again, `intaked --once` runs to completion, and the
# crash invariant (tests/crash_invariant.py) is checked on the backing directory.
#
# Environment: INTAKE_BIN_DIR (intaked), LAZYFS (the lazyfs binary; default
# $INTAKE_BIN_DIR/../tests/lazyfs), POWERLOSS_MODES ("clear torn" by default: drop all unsynced
# data, or let a prefix of it reach the disk), POWERLOSS_REPEAT (passes over every k, default 1),
# POWERLOSS_TRACE (a file to receive the counting run's fsyncs, one line each: N file|dir PATH).
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin="$INTAKE_BIN_DIR/intaked"
lazyfs=${LAZYFS:-$INTAKE_BIN_DIR/../tests/lazyfs}
modes=${POWERLOSS_MODES:-clear torn}
repeat=${POWERLOSS_REPEAT:-1}
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null ||
  [ ! -x "$lazyfs" ]; then
  echo "skipped: needs root, /dev/fuse, fusermount3 and $lazyfs"
  exit 77
fi

tmp=$(mktemp -d /tmp/intake-powerloss.XXXXXX)
back=$tmp/back mnt=$tmp/mnt
fspid="" dpid=""
unmount() {
  [ -n "$fspid" ] || return 0
  # A parser child may hold a file for a moment after the daemon's death; then a lazy unmount.
  for ((i = 0; i < 50; i++)); do fusermount3 -u "$mnt" 2>/dev/null && break; sleep 0.1; done
  mountpoint -q "$mnt" && fusermount3 -u -z "$mnt"
  wait "$fspid"
  fspid=""
}
cleanup() {
  [ -n "$dpid" ] && kill -KILL "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
  unmount
  rm -rf "$tmp"
}
trap cleanup EXIT
export LSAN_OPTIONS=${LSAN_OPTIONS:-}
mkdir -p "$mnt" "$tmp/stage"

cat >"$tmp/intake.yaml" <<EOF
inboxes:
  - path: $mnt/in/a
outbox: $mnt/out
archive: $mnt/archive
failed: $mnt/failed
state: $mnt/state
stability: 300ms
workers: 2
spool_min_free: 0
retry: {backoff: 200ms, max_backoff: 1s}
EOF

# The corpus: PNGs whose pixels encode their index (each its own SHA-256), a copy, a corrupt file.
python3 - "$tmp/stage" <<'EOF'
import struct, sys, zlib
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
for n in (1, 2, 3):
    raw = b"".join(b"\0" + bytes([n, 0, 0] * 8) for _ in range(4))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 4, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    open(f"{sys.argv[1]}/doc-{n}.png", "wb").write(png)
EOF
cp "$tmp/stage/doc-1.png" "$tmp/stage/dup.png"
printf 'this is not a document\n' >"$tmp/stage/corrupt.png"

# Fresh state: the corpus goes straight into the backing directory, so it is durable before the
# first mount (a dropper that never fsyncs would lose its own files, which tests nothing here).
reset() {
  rm -rf "$back"
  mkdir -p "$back/in/a"
  cp "$tmp"/stage/* "$back/in/a/"
  (cd "$tmp/stage" && sha256sum -- *) >"$back/inputs.sha"
}
mount_fs() { # mount_fs FAULT_AT [torn]
  rm -f "$tmp/fault" "$tmp/report"
  local o="backing=$back,fault_at=$1,fault_file=$tmp/fault,report=$tmp/report,trace=$tmp/trace"
  : >"$tmp/trace"
  "$lazyfs" "$mnt" -f -s -o "$o${2:+,$2}" 2>>"$tmp/lazyfs.log" &
  fspid=$!
  for ((i = 0; i < 100; i++)); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
  echo "lazyfs did not mount"
  exit 1
}
# run_daemon: intaked --once; SIGKILLed as soon as lazyfs reports the fault. Exit status in $rc
# (137 when killed).
run_daemon() {
  "$bin" --config "$tmp/intake.yaml" --once >>"$tmp/log" 2>&1 &
  dpid=$!
  local deadline=$((SECONDS + 60))
  while kill -0 "$dpid" 2>/dev/null; do
    if [ -e "$tmp/fault" ] || [ $SECONDS -ge $deadline ]; then
      kill -KILL "$dpid"
      break
    fi
    sleep 0.01
  done
  { wait "$dpid"; rc=$?; } 2>/dev/null
  dpid=""
}

# Count the fsyncs of a run that never faults; the invariant must hold after it too.
reset
mount_fs 0
run_daemon
unmount
read -r _ fsyncs _ <"$tmp/report"
[ -n "${POWERLOSS_TRACE:-}" ] && cp "$tmp/trace" "$POWERLOSS_TRACE"
if [ $rc -ne 0 ] || ! python3 "$here/../crash_invariant.py" "$back" >/dev/null; then
  echo "the run without a fault failed (exit $rc):"
  python3 "$here/../crash_invariant.py" "$back"
  tail -20 "$tmp/log"
  exit 1
fi
echo "powerloss: $fsyncs fsyncs in a run without a fault"

runs=0 faults=0 dropped=0 lost=0 duplicated=0 corrupt=0 violations=0
for ((pass = 0; pass < repeat; pass++)); do
  for mode in $modes; do
    for ((k = 1; k <= fsyncs; k++)); do
      reset
      mount_fs "$k" "$([ "$mode" = torn ] && echo torn)"
      run_daemon
      unmount
      runs=$((runs + 1))
      # The order of fsyncs varies a little between runs (two parser children): a run may
      # finish with fewer than k, and is checked all the same.
      if [ -e "$tmp/fault" ]; then
        faults=$((faults + 1))
        read -r _ _ _ _ _ b <"$tmp/report"
        dropped=$((dropped + b))
        at=$(grep "POWER LOST" "$tmp/trace")
      else
        at="none (fewer than $k fsyncs; the run exited $rc)"
      fi
      mount_fs 0
      run_daemon
      unmount
      verdict=$(python3 "$here/../crash_invariant.py" "$back")
      ok=$?
      read -r _ l _ d _ c <<<"$(head -1 <<<"$verdict")"
      lost=$((lost + l)) duplicated=$((duplicated + d)) corrupt=$((corrupt + c))
      if [ $ok -ne 0 ] || [ $rc -ne 0 ]; then
        echo "VIOLATION: $mode, power lost at fsync $at; restart exited $rc: $verdict"
        tail -5 "$tmp/log"
        violations=$((violations + 1))
      fi
    done
  done
done
echo "powerloss: $fsyncs fsync points, modes: $modes; $runs runs, $faults power cuts" \
  "($dropped unsynced bytes dropped); lost $lost, duplicated $duplicated, corrupt $corrupt; $violations violations"
[ $violations -eq 0 ]
