#!/usr/bin/env python3
"""The crash-consistency invariant, checked after a crash and a restart that ran to completion.

Usage: crash_invariant.py DIR [--expect SPEC] [--archive REL] [--failed REL]

DIR is a daemon test directory: inputs.sha (sha256sum lines of the files dropped into in/a),
in/a, out/a, REL/a for the archive and failed folders (default archive, failed), state/.
SPEC says which records each dropped file must have, as space-separated GROUP=KINDS, KINDS
joined by "+" from result, duplicate, quarantine; a GROUP of names joined by "|" shares its
records, one each (which of two equal files is the duplicate depends on the claim order). The
default is the 5-file corpus of daemon_test.sh crashpoints and powerloss/run.sh: 3 PNGs
doc-1..3.png, dup.png a copy of doc-1.png, corrupt.png not a document.

The invariant: each file has exactly the records SPEC names, each carrying its hash; every
original is kept in the archive or failed folder exactly once; every JSON file parses; nothing is
left in the inbox, the spool or under a temporary name; the journal passes PRAGMA
integrity_check and has no job left unfinished, unsettled or with a reprocess request.

Prints "lost L duplicated D corrupt C" (files with fewer records than SPEC, files with more, JSON
files that do not parse or records with a wrong hash, plus 1 for a failed integrity check), then
one line per problem. Exits 1 when anything is wrong.
"""
import argparse
import glob
import hashlib
import json
import os
import sqlite3
import sys

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--expect", default="doc-1.png|dup.png=result+duplicate doc-2.png=result "
                "doc-3.png=result corrupt.png=quarantine")
ap.add_argument("--archive", default="archive")
ap.add_argument("--failed", default="failed")
args = ap.parse_args()
t = args.dir
sha = dict(reversed(line.split()) for line in open(f"{t}/inputs.sha"))
want = dict(kv.split("=") for kv in args.expect.split())
records, problems = {}, []
corrupt = 0


def load(path):
    global corrupt
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, OSError) as e:
        corrupt += 1
        problems.append(f"{path}: does not parse: {e}")
        return None


for f in glob.glob(f"{t}/out/a/*.json"):
    d = load(f)
    if d is not None:
        kind = "duplicate" if f.endswith(".duplicate.json") else "result"
        records.setdefault(d["source"]["name"], []).append((kind, d["source"]["sha256"]))
for f in glob.glob(f"{t}/{args.failed}/a/*.error.json"):
    d = load(f)
    if d is not None:
        records.setdefault(d["file"], []).append(("quarantine", d["sha256"]))

lost = duplicated = 0
for group, kinds in want.items():
    names, kinds = group.split("|"), kinds.split("+")
    per_file = len(kinds) // len(names)
    got = {name: records.pop(name, []) for name in names}
    for name, g in got.items():
        lost += len(g) < per_file
        duplicated += len(g) > per_file
        corrupt += sum(1 for _, h in g if h != sha[name])
    if sorted(k for g in got.values() for k, _ in g) != sorted(kinds) or \
            any(len(g) != per_file for g in got.values()) or \
            any(h != sha[name] for name, g in got.items() for _, h in g):
        problems.append(f"{group}: {got}")
if records:
    problems.append(f"records for files never dropped: {records}")

kept, dropped = {}, {}
for f in glob.glob(f"{t}/{args.archive}/a/*") + glob.glob(f"{t}/{args.failed}/a/*"):
    if not f.endswith(".error.json"):
        with open(f, "rb") as fh:
            h = hashlib.sha256(fh.read()).hexdigest()
        kept[h] = kept.get(h, 0) + 1
for name in (n for group in want for n in group.split("|")):
    dropped[sha[name]] = dropped.get(sha[name], 0) + 1
if kept != dropped:
    problems.append(f"originals kept {kept}, dropped {dropped}")

left = [os.path.join(d, n) for base in ("in", "state/spool") for d, _, names in
        os.walk(f"{t}/{base}") for n in names]
left += [os.path.join(d, n) for d, _, names in os.walk(f"{t}/out") for n in names
         if n.startswith(".intake-")]
if left:
    problems.append(f"left over: {sorted(left)}")

db = sqlite3.connect(f"{t}/state/journal.db")
ok = db.execute("pragma integrity_check").fetchone()[0]
# States: 0 queued, 1 running, 2 done, 3 duplicate, 4 failed, 5 reprocessed.
odd = db.execute("select name, state, settled, reprocess, dest from jobs where state < 2 or "
                 "(state < 5 and settled = 0) or reprocess != 0 or (state = 5 and dest != '')"
                 ).fetchall()
db.close()
if ok != "ok":
    corrupt += 1
    problems.append(f"journal integrity_check: {ok}")
if odd:
    problems.append(f"journal: unfinished jobs {odd}")

print(f"lost {lost} duplicated {duplicated} corrupt {corrupt}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
