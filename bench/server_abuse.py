#!/usr/bin/env python3
"""Hostile clients against a running `zeroshot serve`, on loopback only.

Opens N slow connections that send their request one byte every INTERVAL seconds (the headers, or a body after
complete headers), spread over several loopback source addresses (127.0.1.x, so a per-address cap does not simply
refuse them all), and measures a normal client's /healthz and /v1/classify latency (a new connection per request)
before and while they are open. Then times the answer to oversized bodies (a Content-Length over the limit, and a
chunked body that grows past it). docs/benchmarks.md ("Server under abuse") has the commands and numbers.

  bench/server_abuse.py --port 8080 --image photo.jpg --slow 1000 --mode headers --requests 200
"""
import argparse
import base64
import http.client
import json
import multiprocessing
import resource
import select
import socket
import statistics
import threading
import time


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def measure(host, port, body, n, timeout):
    """n rounds of GET /healthz and POST /v1/classify, each on a new connection; latencies in ms, failures."""
    out = {"healthz": [], "classify": []}
    failed = {"healthz": 0, "classify": 0}
    for _ in range(n):
        for route in ("healthz", "classify"):
            t0 = time.perf_counter()
            try:
                c = http.client.HTTPConnection(host, port, timeout=timeout)
                if route == "healthz":
                    c.request("GET", "/healthz")
                else:
                    c.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                c.close()
                if r.status != 200:
                    failed[route] += 1
                    continue
            except OSError:
                failed[route] += 1
                continue
            out[route].append((time.perf_counter() - t0) * 1000.0)
    return out, failed


class SlowClients:
    """N sockets that trickle a request one byte per interval from one thread (a selector, no thread each)."""

    def __init__(self, host, port, n, mode, interval, sources):
        self.stop = threading.Event()
        self.socks = []
        self.refused = 0
        self.closed_by_server = 0
        body = b'{"image": "' + b"A" * 4000 + b'"}'
        if mode == "headers":
            payload = (f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                       f"X-Padding: {'p' * 4000}\r\n\r\n").encode()
            self.prefix = b""
        else:  # complete headers at once, then the body byte by byte
            self.prefix = (f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode()
            payload = body
        self.payload = payload
        for i in range(n):
            s = socket.socket()
            s.setblocking(True)
            s.settimeout(5)
            try:
                s.bind((sources[i % len(sources)], 0))
                s.connect((host, port))
                if self.prefix:
                    s.sendall(self.prefix)
                s.setblocking(False)
                self.socks.append([s, 0])
            except OSError:
                self.refused += 1
                s.close()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(self.interval_s):
            for e in self.socks:
                s, at = e
                if s is None:
                    continue
                try:
                    s.send(self.payload[at % len(self.payload):at % len(self.payload) + 1])
                    e[1] += 1
                    # A server that closed the connection answers the next send with a reset or EOF.
                    try:
                        if s.recv(4096) == b"":
                            raise OSError("closed")
                    except BlockingIOError:
                        pass
                except OSError:
                    self.closed_by_server += 1
                    s.close()
                    e[0] = None

    interval_s = 2.0

    def open_count(self):
        return sum(1 for s, _ in self.socks if s is not None)

    def close(self):
        self.stop.set()
        self.thread.join()
        for s, _ in self.socks:
            if s is not None:
                s.close()


def slow_process(conn, host, port, n, mode, interval, sources):
    """The slow clients in a process of their own, so that their loop never delays the normal client's timing."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    SlowClients.interval_s = interval
    slow = SlowClients(host, port, n, mode, interval, sources)
    conn.send({"connected": len(slow.socks), "refused": slow.refused})
    conn.recv()
    stats = {"open_at_end": slow.open_count(), "closed_by_server": slow.closed_by_server}
    slow.close()
    conn.send(stats)


def time_to_413(host, port, chunked):
    """Seconds from the end of the headers to the status line; the status (0: none within 30 s)."""
    s = socket.create_connection((host, port), timeout=30)
    if chunked:
        head = (f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
    else:
        head = (f"POST /v1/classify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 2147483648\r\n\r\n").encode()
    s.sendall(head)
    t0 = time.perf_counter()
    status = 0
    sent = 0
    chunk = b"A" * (1 << 20)
    piece = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk
    buf = b""
    while time.perf_counter() - t0 < 30:
        readable, writable, _ = select.select([s], [s], [], 1.0)
        if readable:
            try:
                d = s.recv(4096)
            except OSError:
                break
            if not d:
                break
            buf += d
            if b"\r\n" in buf:
                status = int(buf.split(b" ")[1])
                break
        elif writable:  # keep streaming body data, as a client that ignores the answer would
            try:
                s.sendall(piece)  # whole pieces: a chunked body stays well-formed
                sent += len(chunk)
            except OSError:
                pass
    dt = time.perf_counter() - t0
    s.close()
    return dt, status, sent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--image", required=True)
    ap.add_argument("--labels", default="a cat,a dog,a red car,a bird,a house")
    ap.add_argument("--slow", type=int, default=1000, help="slow connections")
    ap.add_argument("--mode", choices=("headers", "body"), default="headers")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between the slow clients' bytes")
    ap.add_argument("--sources", type=int, default=50, help="loopback source addresses the slow clients use")
    ap.add_argument("--requests", type=int, default=100, help="rounds of the normal client in each phase")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between opening the slow clients and measuring")
    ap.add_argument("--no-oversize", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(a.image, "rb") as f:
        img = base64.b64encode(f.read()).decode()
    body = json.dumps({"image": img, "candidate_labels": a.labels.split(",")})
    measure(a.host, a.port, body, 5, a.timeout)  # warm-up: label embeddings cached
    report = {}

    def summary(name, lat, failed):
        for route in ("healthz", "classify"):
            xs = lat[route]
            report[f"{name} {route}"] = {"p50_ms": round(percentile(xs, 50), 2), "p99_ms": round(percentile(xs, 99), 2),
                                         "answered": len(xs), "failed": failed[route]}

    summary("unloaded", *measure(a.host, a.port, body, a.requests, a.timeout))
    sources = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(a.sources)]
    t0 = time.perf_counter()
    here, there = multiprocessing.Pipe()
    child = multiprocessing.Process(target=slow_process,
                                    args=(there, a.host, a.port, a.slow, a.mode, a.interval, sources))
    child.start()
    opened = here.recv()
    opened["seconds_to_open"] = round(time.perf_counter() - t0, 2)
    time.sleep(a.settle)
    summary(f"{a.slow} slow ({a.mode})", *measure(a.host, a.port, body, a.requests, a.timeout))
    here.send("stop")
    report["slow connections"] = {"asked": a.slow, **opened, **here.recv()}
    child.join()
    if not a.no_oversize:
        for chunked in (False, True):
            dt, status, sent = time_to_413(a.host, a.port, chunked)
            report["oversized " + ("chunked" if chunked else "Content-Length 2 GiB")] = {
                "status": status, "seconds": round(dt, 4), "body_bytes_sent": sent}
    for k, v in report.items():
        print(f"{k:40s} {json.dumps(v)}")


if __name__ == "__main__":
    main()
