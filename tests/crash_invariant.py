#!/usr/bin/env python3
"""The crash-consistency invariant, checked after a crash and a restart that ran to completion.

Usage: crash_invariant.py DIR. DIR is a daemon test directory: inputs.sha (sha256sum lines of
the files dropped into in/a: 3 PNGs doc-1..3.png, dup.png a copy of doc-1.png, corrupt.png not
a document), in/a, out/a, failed/a, state/. The invariant: each dropped file has exactly one
record carrying its hash (a result, a duplicate notice or a quarantine record), the corrupt one
quarantined and exactly one of doc-1 and its copy a duplicate notice; every JSON file parses;
nothing is left in the inbox, the spool or under a temporary name; the journal passes
PRAGMA integrity_check.

Prints "lost L duplicated D corrupt C" (files with no record, files with more than one, JSON
files that do not parse or records with a wrong hash, plus 1 for a failed integrity check),
then one line per problem. Exits 1 when anything is wrong.
"""
import glob
import json
import os
import sqlite3
import sys

t = sys.argv[1]
sha = dict(reversed(line.split()) for line in open(f"{t}/inputs.sha"))
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
for f in glob.glob(f"{t}/failed/a/*.error.json"):
    d = load(f)
    if d is not None:
        records.setdefault(d["file"], []).append(("quarantine", d["sha256"]))

lost = duplicated = 0
kind = {}
for name, h in sha.items():
    got = records.pop(name, [])
    lost += not got
    duplicated += len(got) > 1
    corrupt += sum(1 for _, g in got if g != h)
    if len(got) != 1 or got[0][1] != h:
        problems.append(f"{name}: {got}")
    kind[name] = got[0][0] if got else None
if records:
    problems.append(f"records for files never dropped: {records}")
want = {"corrupt.png": "quarantine", "doc-2.png": "result", "doc-3.png": "result"}
if any(kind[k] != v for k, v in want.items()) or \
        sorted([kind["doc-1.png"], kind["dup.png"]], key=str) != ["duplicate", "result"]:
    problems.append(f"outcomes: {kind}")

left = [os.path.join(d, n) for base in ("in", "state/spool") for d, _, names in
        os.walk(f"{t}/{base}") for n in names]
left += [os.path.join(d, n) for d, _, names in os.walk(f"{t}/out") for n in names
         if n.startswith(".intake-")]
if left:
    problems.append(f"left over: {sorted(left)}")

db = sqlite3.connect(f"{t}/state/journal.db")
ok = db.execute("pragma integrity_check").fetchone()[0]
db.close()
if ok != "ok":
    corrupt += 1
    problems.append(f"journal integrity_check: {ok}")

print(f"lost {lost} duplicated {duplicated} corrupt {corrupt}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
