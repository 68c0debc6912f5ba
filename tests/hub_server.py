#!/usr/bin/env python3
"""A loopback stand-in for the Hugging Face hub, for tests/e2e_model_pull.sh.

Serves one model directory (the tiny fixture) as repository REPO in the hub's URL layout, under a
first path segment naming a failure mode, so one server covers every case: a test points
HF_ENDPOINT at http://127.0.0.1:PORT/MODE.

  GET /MODE/api/models/REPO/revision/REV      {"id", "sha", "siblings": [{"rfilename"}]}
  GET /MODE/api/models/REPO/tree/REV?recursive=1
      [{"type": "file", "path", "size", "oid", "lfs": {"oid", "size", "pointerSize"}}], two
      entries per page, the next page named by a Link: <...>; rel="next" header
  GET /MODE/REPO/resolve/REV/NAME             small files directly; *.safetensors (the "LFS"
      files) by a 302 to /MODE/cdn/SHA256, which honours Range (206)

Modes: ok; drop (the first GET of each CDN object is cut off halfway through its body); corrupt
(model-00002-of-00002.safetensors is served with one byte flipped); gated (401 GatedRepo
without a token, 403 GatedRepo with a token other than GOOD_TOKEN). Any revision other than
"main" or the commit is a 404 RevisionNotFound, any other repository a 404 RepoNotFound.

Each request is logged to LOG as one JSON line: mode, method, path, range, authorization, status,
body bytes sent. Prints the port on stdout, then serves until killed or for LIFETIME seconds.
Python standard library only.
"""
import hashlib
import http.server
import json
import os
import sys
import threading
import urllib.parse

GOOD_TOKEN = "hf_test_good"
COMMIT = hashlib.sha1(b"tiny-glm4v fixture").hexdigest()


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    def __init__(self, repo, directory, log_path):
        self.repo = repo
        self.files = {}
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), "rb") as f:
                self.files[name] = f.read()
        self.by_sha = {hashlib.sha256(d).hexdigest(): n for n, d in self.files.items()}
        self.log_path = log_path
        self.lock = threading.Lock()
        self.cdn_gets = {}

    def is_lfs(self, name):
        return name.endswith(".safetensors")

    def tree(self):
        out = []
        for name, data in self.files.items():
            e = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
            if self.is_lfs(name):
                e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                            "pointerSize": 134}
            out.append(e)
        # A folder the client must skip.
        out.append({"type": "directory", "path": "extras", "size": 0, "oid": "0" * 40})
        return out

    def log(self, entry):
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub = None

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body=b"", headers=(), cut=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = body if cut is None else body[:cut]
        self.wfile.write(sent)
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True
            self.connection.shutdown(2)
        self.entry["status"] = status
        self.entry["bytes"] = len(sent)

    def error(self, status, code, message):
        body = json.dumps({"error": message}).encode()
        self.send(status, body, [("Content-Type", "application/json"), ("X-Error-Code", code),
                                 ("X-Error-Message", message)])

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.split("/")
        mode = parts[1] if len(parts) > 1 else ""
        rest = parts[2:]
        hub = self.hub
        auth = self.headers.get("Authorization", "")
        self.entry = {"mode": mode, "method": "GET", "path": url.path,
                      "range": self.headers.get("Range"), "auth": auth}
        try:
            self.route(hub, mode, rest, url, auth)
        finally:
            hub.log(self.entry)

    def route(self, hub, mode, rest, url, auth):
        if mode == "gated" and not (rest and rest[0] == "cdn"):
            if not auth:
                return self.error(401, "GatedRepo", "Access to model %s is restricted." % hub.repo)
            if auth != "Bearer " + GOOD_TOKEN:
                return self.error(403, "GatedRepo", "Access to model %s is restricted and "
                                  "you are not in the authorized list." % hub.repo)
        if rest[:1] == ["cdn"] and len(rest) == 2 and rest[1] in hub.by_sha:
            return self.cdn(hub, mode, hub.by_sha[rest[1]])
        if rest[:2] == ["api", "models"]:
            repo, tail = "/".join(rest[2:4]), rest[4:]
            if repo != hub.repo:
                return self.error(404, "RepoNotFound", "Repository not found")
            rev = urllib.parse.unquote(tail[1]) if len(tail) >= 2 else ""
            if rev not in ("main", COMMIT):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            if tail[0] == "revision" and len(tail) == 2:
                body = {"id": hub.repo, "sha": COMMIT,
                        "siblings": [{"rfilename": n} for n in hub.files]}
                return self.send(200, json.dumps(body).encode(),
                                 [("Content-Type", "application/json")])
            if tail[0] == "tree" and len(tail) == 2:
                return self.tree_page(hub, mode, url)
        if len(rest) >= 5 and rest[2] == "resolve":
            repo, rev, name = "/".join(rest[:2]), urllib.parse.unquote(rest[3]), "/".join(rest[4:])
            name = urllib.parse.unquote(name)
            if repo != hub.repo:
                return self.error(404, "RepoNotFound", "Repository not found")
            if rev not in ("main", COMMIT):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            if name not in hub.files:
                return self.error(404, "EntryNotFound", "Entry not found")
            data = hub.files[name]
            if hub.is_lfs(name):
                where = "/%s/cdn/%s" % (mode, hashlib.sha256(data).hexdigest())
                return self.send(302, b"", [("Location", where), ("X-Repo-Commit", COMMIT)])
            return self.send(200, data, [("X-Repo-Commit", COMMIT)])
        return self.error(404, "EntryNotFound", "No such route")

    def tree_page(self, hub, mode, url):
        query = urllib.parse.parse_qs(url.query)
        start = int(query.get("cursor", ["0"])[0])
        entries = hub.tree()
        page = entries[start:start + 2]
        headers = [("Content-Type", "application/json")]
        if start + 2 < len(entries):
            nxt = "http://%s:%d%s?recursive=1&cursor=%d" % (
                self.server.server_address[0], self.server.server_address[1], url.path, start + 2)
            headers.append(("Link", '<%s>; rel="next"' % nxt))
        return self.send(200, json.dumps(page).encode(), headers)

    def cdn(self, hub, mode, name):
        data = hub.files[name]
        if mode == "corrupt" and name == "model-00002-of-00002.safetensors":
            data = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
        with hub.lock:
            n_get = hub.cdn_gets.get((mode, name), 0)
            hub.cdn_gets[(mode, name)] = n_get + 1
        rng = self.headers.get("Range")
        if rng:
            first = int(rng.split("=")[1].split("-")[0])
            if first >= len(data):
                return self.send(416, b"", [("Content-Range", "bytes */%d" % len(data))])
            body = data[first:]
            return self.send(206, body, [("Content-Range", "bytes %d-%d/%d" % (
                first, len(data) - 1, len(data)))])
        cut = len(data) // 2 if mode == "drop" and n_get == 0 else None
        return self.send(200, data, cut=cut)


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: hub_server.py REPO DIR LOG LIFETIME_SECONDS")
    repo, directory, log_path, lifetime = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    Handler.hub = Hub(repo, directory, log_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # Never outlive a test that forgot to stop it.
    threading.Timer(lifetime, server.shutdown).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
