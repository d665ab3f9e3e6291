#!/usr/bin/env python3
"""The numbers of docs/scale-out.md: zeroshot.inference's images/s locally and on a loopback Dask cluster with 1 and
2 workers, and FAISS index build time and size at 100k and 1M vectors (zeroshot.embeddings.build_index).

  python python/bench/scale_out_bench.py --model /tmp/vitb32 --images ../shared/datasets/imagenet-samples \
      [--rounds 3] [--index-sizes 100000,1000000] [--precision f32]

Run it with a Python that has zeroshot, distributed, pyarrow and faiss (scripts/test-python.sh's venv). Rounds
alternate the configurations; medians are reported, with the load average before each round (the machine is shared).
The cluster is started here on 127.0.0.1 (a scheduler, then N workers with --nthreads 1, the engine using
cores / N threads each) and stopped after. Prints a JSON object and a Markdown table.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from zeroshot import embeddings, inference


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(workers, tmp):
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    log = open(os.path.join(tmp, "cluster.log"), "a")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], stdout=log, stderr=log)]
    for _ in range(workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                                       "--no-nanny", "--host", "127.0.0.1", "--dashboard-address", ":0"],
                                      stdout=log, stderr=log))
    from distributed import Client

    deadline = time.time() + 60
    while True:
        try:
            c = Client(addr, timeout=5, set_as_default=False)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    c.wait_for_workers(workers, timeout=60)
    c.close()
    return addr, procs


def stop(procs):
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def run_embed(cfg, args, tmp):
    out = os.path.join(tmp, "out")
    shutil.rmtree(out, ignore_errors=True)
    cores = os.cpu_count() or 1
    kw = dict(shard_size=args.shard_size, precision=args.precision, progress=False)
    if cfg == "local":
        s = inference.inference(args.images, out, args.model, threads=0, **kw)
    else:
        n = int(cfg.split("-")[1])
        addr, procs = start_cluster(n, tmp)
        try:
            s = inference.inference(args.images, out, args.model, distributor="dask", scheduler=addr,
                                    threads=max(1, cores // n), **kw)
        finally:
            stop(procs)
    return s["images"] / s["seconds"], s


def index_bench(n, d, tmp):
    out = os.path.join(tmp, f"idx{n}")
    os.makedirs(os.path.join(out, "img_emb"), exist_ok=True)
    rng = np.random.default_rng(0)
    part = 100_000
    for i in range(0, n, part):
        x = rng.standard_normal((min(part, n - i), d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(os.path.join(out, "img_emb", f"img_emb_{i // part:03d}.npy"), x.astype(np.float16))
    npy_bytes = sum(os.path.getsize(os.path.join(out, "img_emb", f)) for f in os.listdir(os.path.join(out, "img_emb")))
    rows = []
    for budget in ("4G", "256M"):
        s = embeddings.build_index(out, os.path.join(out, f"index-{budget}.faiss"), memory_budget=budget,
                                   exact_below=100_000)
        rows.append({"vectors": n, "dim": d, "budget": budget, "type": s["type"], "seconds": s["seconds"],
                     "index_bytes": s["bytes"], "npy_bytes": npy_bytes})
    shutil.rmtree(out)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--configs", default="local,dask-1,dask-2")
    ap.add_argument("--index-sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="zs-scale-")
    configs = args.configs.split(",")
    rates = {c: [] for c in configs}
    loads = []
    for r in range(args.rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        for c in order:
            loads.append(os.getloadavg()[0])
            rate, s = run_embed(c, args, tmp)
            rates[c].append(rate)
            print(f"round {r} {c}: {rate:.1f} images/s ({s['images']} images, {s['seconds']} s)", file=sys.stderr)
    idx = []
    for n in [int(x) for x in args.index_sizes.split(",") if x]:
        idx += index_bench(n, args.dim, tmp)
        print(f"index {n}: {idx[-2:]}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "images_per_s": {c: statistics.median(v) for c, v in rates.items()},
        "all": rates,
        "load_avg_1min": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        "cores": os.cpu_count(),
        "precision": args.precision,
        "index": idx,
    }
    print(json.dumps(result))
    print("\n| configuration | images/s (median) | per core |\n|---|---|---|")
    cores = os.cpu_count() or 1
    for c, v in result["images_per_s"].items():
        print(f"| {c} | {v:.1f} | {v / cores:.1f} |")
    print("\n| vectors | budget | index | build s | index MB | npy MB |\n|---|---|---|---|---|---|")
    for row in idx:
        print(f"| {row['vectors']:,} | {row['budget']} | {row['type']} | {row['seconds']:.1f} | "
              f"{row['index_bytes'] / 2**20:.0f} | {row['npy_bytes'] / 2**20:.0f} |")


if __name__ == "__main__":
    main()
