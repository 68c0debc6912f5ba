#!/usr/bin/env python3
"""unit_syscalls.py STRACE_SUMMARY UNIT_FILE: checks that every system call in a `strace -f -c`
summary passes the unit's SystemCallFilter= lines, with the groups expanded by the installed
systemd (`systemd-analyze syscall-filter`). An allow list always includes @default, as systemd
adds it; the `~` lines are then taken away. Prints the calls the unit would refuse; exit 1 if any."""
import re
import subprocess
import sys

listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
groups, current = {}, None
for line in listing.splitlines():
    if not line.strip() or line.strip().startswith("#"):
        continue
    if not line[0].isspace():
        current = groups.setdefault(line.strip(), [])
    elif current is not None:
        current.append(line.strip())


def expand(items, seen=frozenset()):
    out = set()
    for item in items:
        if item.startswith("@"):
            if item not in seen:
                out |= expand(groups[item], seen | {item})
        else:
            out.add(item)
    return out


allow, deny = {"@default"}, set()
for line in open(sys.argv[2]):
    m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
    if m:
        (deny if m.group(1) else allow).update(m.group(2).split())
allowed = expand(allow) - expand(deny)

# Calls the unit refuses (with EPERM) that are harmless there: SQLite gives a new WAL file the
# database's owner only when it runs as root (these tests; the service runs as User=intake), and
# it ignores the result.
TOLERATED = {"fchown"}

used = set()
for line in open(sys.argv[1]):
    fields = line.split()
    if len(fields) >= 5 and re.fullmatch(r"[0-9.]+", fields[0]) and fields[-1] != "total":
        used.add(fields[-1])
print(f"syscalls: {len(used)} distinct calls made; the unit allows {len(allowed)}")
print("used:", " ".join(sorted(used)))
refused = sorted(used - allowed - TOLERATED)
if refused:
    print("refused by the unit:", " ".join(refused))
sys.exit(1 if refused or not used else 0)
