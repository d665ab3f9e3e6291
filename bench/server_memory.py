#!/usr/bin/env python3
"""Memory of `zeroshot serve` under hostile bodies (issue 19), for docs/benchmarks.md "Server under abuse".

Starts the server, reads its resident set from /proc/<pid>/statm every 5 ms, and sends, one alone and then N at
once: amplifying JSON bodies ({"labels": [{}, {}, ...]} of 31 MiB, under the 32 MiB body limit) and a 9,999 x 9,999
PNG (~300 KB; 100 megapixels decoded). Prints RSS before, the peak during each burst, RSS after, and the answers.

    python3 bench/server_memory.py build/zeroshot /work/shared/fixtures/clip/clip-tiny-quickgelu [--clients 4]

Standard library only; loopback only.
"""
import argparse
import base64
import http.client
import json
import os
import struct
import subprocess
import threading
import time
import zlib


def rss_mib(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def black_png(width, height):
    raw = zlib.compress(b"".join(b"\0" + bytes(width) for _ in range(height)), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def post(port, body, out):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("POST", "/v1/classify", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read().decode(errors="replace")
        out.append(f"{r.status} {text[:90]}")
    except OSError as e:
        out.append(f"error {e}")


def burst(pid, port, body, clients):
    peak = [rss_mib(pid)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.005)

    s = threading.Thread(target=sample)
    s.start()
    answers = []
    t0 = time.time()
    ts = [threading.Thread(target=post, args=(port, body, answers)) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    seconds = time.time() - t0
    stop.set()
    s.join()
    return peak[0], seconds, answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--skip-png", action="store_true")
    a = ap.parse_args()
    server = subprocess.Popen([a.binary, "serve", "--model", a.model, "--port", "0", "--threads", "2",
                               "--label-cache", "none", "-q"], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().strip().rstrip("/").rsplit(":", 1)[1])
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/healthz")
        c.getresponse().read()
        amplifying = b'{"labels": [' + b"{}," * ((31 << 20) // 3) + b"{}]}"
        png = black_png(9999, 9999)
        image = json.dumps({"image": base64.b64encode(png).decode(), "candidate_labels": ["black", "white"]}).encode()
        cases = [("amplifying 31 MiB body", amplifying)]
        if not a.skip_png:
            cases.append((f"9,999 x 9,999 PNG ({len(png) // 1024} KB)", image))
        for name, body in cases:
            for n in (1, a.clients):
                before = rss_mib(server.pid)
                peak, seconds, answers = burst(server.pid, port, body, n)
                time.sleep(0.5)
                after = rss_mib(server.pid)
                counts = {}
                for x in answers:
                    counts[x.split(" ", 1)[0]] = counts.get(x.split(" ", 1)[0], 0) + 1
                print(f"{name}, {n} at once: RSS before {before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB;"
                      f" {seconds:.1f} s; answers {counts}; e.g. {answers[0]!r}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
