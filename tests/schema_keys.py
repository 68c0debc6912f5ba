"""The top-level field names of a schema YAML, in order, read from its `fields:` block without a
YAML library (the shell tests run on a bare Python). Shared by e2e_extract.sh and daemon_test.sh."""
import re


def schema_keys(schema_path):
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
    return keys
