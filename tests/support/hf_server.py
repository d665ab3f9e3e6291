#!/usr/bin/env python3
"""A tiny stand-in for the Hugging Face hub's file endpoint, for tests (python3 stdlib only).

    hf_server.py --repo test-org/tiny-clip=/path/to/model/folder [--repo ...] [options]

Listens on 127.0.0.1 (port 0 unless --port) and prints the chosen port as the first line of stdout.
Serves  /<org>/<name>/resolve/<revision>/<file>  the way huggingface.co does:
  - revision "main" or the fixed --commit; anything else: 404 X-Error-Code: RevisionNotFound
  - unknown repo: 404 X-Error-Code: RepoNotFound; missing file: 404 X-Error-Code: EntryNotFound + X-Repo-Commit
  - regular files: 200, X-Repo-Commit, ETag "<git blob sha1>", Content-Length
  - LFS files (*.safetensors, *.bin): 302 to an absolute /__lfs/... URL (the "CDN", which needs no token),
    with X-Repo-Commit, X-Linked-Etag "<sha256>", X-Linked-Size; the CDN answers 200 with ETag "<sha256>"
  - HEAD and GET; GET honours "Range: bytes=N-" (206)
Options for failure tests:
  --token T          resolve URLs need "Authorization: Bearer T" (401 otherwise)
  --interrupt FILE   GET of FILE sends all headers, half of the bytes, then closes the connection
  --stall FILE       GET of FILE sends half of the bytes, then sends nothing for 60 s
  --corrupt FILE     GET of FILE flips one byte (the etag stays that of the real bytes)
  --no-head          answer HEAD with 405 (a plain server: clients must take the metadata from the GET)
  --no-range         ignore Range headers (always 200 with the whole file)
  --log PATH         append one line per request ("METHOD PATH RANGE") and flush it before answering
  --exit-on-stdin-eof  exit when stdin closes (the test holds the other end of a pipe: no orphan servers)
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", action="append", default=[], help="ORG/NAME=FOLDER (repeatable)")
    p.add_argument("--commit", default="c0ffee" * 6 + "c0ff")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token")
    p.add_argument("--interrupt")
    p.add_argument("--stall")
    p.add_argument("--corrupt")
    p.add_argument("--no-head", action="store_true")
    p.add_argument("--no-range", action="store_true")
    p.add_argument("--log")
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    return p.parse_args()


ARGS = parse_args()
REPOS = {}
for spec in ARGS.repo:
    name, _, folder = spec.partition("=")
    REPOS[name] = os.path.realpath(folder)
LOG_LOCK = threading.Lock()
HASHES = {}  # path -> (git sha1, sha256)


def hashes(path):
    if path not in HASHES:
        data = open(path, "rb").read()
        git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        HASHES[path] = (git, hashlib.sha256(data).hexdigest())
    return HASHES[path]


def local_file(repo, filename):
    """The file of `repo` named `filename`, or None (never outside the repo folder)."""
    root = REPOS[repo]
    path = os.path.realpath(os.path.join(root, filename))
    if not path.startswith(root + os.sep) or not os.path.isfile(path):
        return None
    return path


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the tests read --log instead
        pass

    def do_HEAD(self):
        self.handle_request(head=True)

    def do_GET(self):
        self.handle_request(head=False)

    def log_request_line(self):
        if ARGS.log:
            with LOG_LOCK, open(ARGS.log, "a") as f:
                f.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Range", "-")))
                f.flush()

    def reply(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_request(self, head):
        self.log_request_line()
        if head and ARGS.no_head:
            return self.reply(405, [("Allow", "GET")])
        raw_path = urllib.parse.urlsplit(self.path).path
        if raw_path.startswith("/__lfs/"):
            return self.serve_lfs(raw_path[len("/__lfs/"):], head)
        marker = "/resolve/"
        if marker not in raw_path:
            return self.reply(404, [("X-Error-Code", "RepoNotFound")], b"not a resolve URL")
        repo, _, rest = raw_path[1:].partition(marker)
        repo = urllib.parse.unquote(repo)
        rev_raw, _, file_raw = rest.partition("/")
        rev, filename = urllib.parse.unquote(rev_raw), urllib.parse.unquote(file_raw)
        if ARGS.token is not None and self.headers.get("Authorization") != "Bearer " + ARGS.token:
            msg = "Invalid credentials in Authorization header" if self.headers.get("Authorization") else \
                "Access to this repository is restricted"
            return self.reply(401, [("X-Error-Message", msg)], msg.encode())
        if repo not in REPOS:
            return self.reply(404, [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")],
                              b"Repository not found")
        if rev not in ("main", ARGS.commit):
            return self.reply(404, [("X-Error-Code", "RevisionNotFound"), ("X-Error-Message", "Invalid rev id: " + rev)],
                              b"Revision not found")
        path = local_file(repo, filename)
        if path is None:
            return self.reply(404, [("X-Error-Code", "EntryNotFound"), ("X-Error-Message", "Entry not found"),
                                    ("X-Repo-Commit", ARGS.commit)], b"Entry not found")
        git, sha = hashes(path)
        size = os.path.getsize(path)
        if filename.endswith(LFS_SUFFIXES):
            host, port = self.server.server_address[:2]
            location = "http://%s:%d/__lfs/%s/%s" % (host, port, urllib.parse.quote(repo),
                                                     urllib.parse.quote(filename))
            return self.reply(302, [("Location", location), ("X-Repo-Commit", ARGS.commit),
                                    ("X-Linked-Etag", '"%s"' % sha), ("X-Linked-Size", str(size)),
                                    ("ETag", '"%s"' % git)])
        self.send_file(path, filename, head, [("X-Repo-Commit", ARGS.commit), ("ETag", '"%s"' % git)])

    def serve_lfs(self, rest, head):
        parts = urllib.parse.unquote(rest).split("/")
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        path = local_file(repo, filename) if repo in REPOS else None
        if path is None:
            return self.reply(404, body=b"no such object")
        self.send_file(path, filename, head, [("ETag", '"%s"' % hashes(path)[1])])

    def send_file(self, path, filename, head, headers):
        size = os.path.getsize(path)
        start = 0
        rng = self.headers.get("Range")
        if rng and not head and not ARGS.no_range:
            if not (rng.startswith("bytes=") and rng.endswith("-") and rng[6:-1].isdigit()):
                return self.reply(416, [("Content-Range", "bytes */%d" % size)])
            start = int(rng[6:-1])
            if start >= size:
                return self.reply(416, [("Content-Range", "bytes */%d" % size)])
        self.send_response(206 if start else 200)
        for k, v in headers:
            self.send_header(k, v)
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if head:
            return
        with open(path, "rb") as f:
            data = f.read()[start:]
        base = os.path.basename(filename)
        if base == ARGS.corrupt and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        if base in (ARGS.interrupt, ARGS.stall):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if base == ARGS.stall:
                time.sleep(60)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        for i in range(0, len(data), 1 << 20):
            self.wfile.write(data[i:i + (1 << 20)])


def main():
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    if ARGS.exit_on_stdin_eof:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
