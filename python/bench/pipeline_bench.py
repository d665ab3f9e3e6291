#!/usr/bin/env python3
"""zeroshot.pipeline against transformers' pipeline on the same checkpoint and photos, and the Python layer's
overhead against `zeroshot bench` — the numbers of docs/benchmarks.md ("Python").

  python python/bench/pipeline_bench.py --model /tmp/vitb32 --images ../shared/datasets/imagenet-samples \
      --zeroshot build/zeroshot [--n 32] [--rounds 3] [--iters 5]

Run it with a Python that has zeroshot and transformers (+ PyTorch) installed. Per round, in alternating order:
- end to end, files in, sorted scores out, 10 candidate labels, batch 1 and 8: zeroshot.pipeline (label embeddings
  computed once, as it does) and transformers' pipeline (which encodes the labels again for every image; that is
  its cost to the user), at torch.set_num_threads 1 and 2, the better one kept;
- encode only, random pixel values, batch 1 and 8: Model.embed_pixel_values from Python and `zeroshot bench`
  (a new process each round; its images_per_s is the same loop in C++).
Medians over rounds. Also the Python layer's own cost per call (an empty batch: every check, conversion and the
GIL release, no engine work). Prints a JSON object and a Markdown table.
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np

LABELS = ["cat", "dog", "car", "bird", "fish", "tree", "house", "boat", "plane", "horse"]


def timed(fn, n):
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--zeroshot", required=True, help="the CLI, for `zeroshot bench`")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--torch-threads", default="1,2")
    a = ap.parse_args()

    import torch
    import transformers
    import zeroshot

    files = sorted(os.path.join(a.images, f) for f in os.listdir(a.images))[: a.n]
    zs = zeroshot.pipeline("zero-shot-image-classification", model=a.model, label_cache=False)
    hf = transformers.pipeline("zero-shot-image-classification", model=a.model, device="cpu")
    zs(files[:1], candidate_labels=LABELS)  # label embeddings, weights paged in
    hf(files[:1], candidate_labels=LABELS)
    side = zs.model.image_size
    pixels = {b: np.random.default_rng(1234).standard_normal((b, 3, side, side), dtype=np.float32) for b in (1, 8)}
    runs = {}
    # What the Python layer costs per call, without the engine's work: an empty batch goes through every check and
    # conversion, the GIL release and the result array, and the engine returns at once.
    empty = pixels[1][:0]
    zs.model.embed_pixel_values(empty)
    t = time.perf_counter()
    for _ in range(10000):
        zs.model.embed_pixel_values(empty)
    layer_us = (time.perf_counter() - t) / 10000 * 1e6

    def add(key, v):
        runs.setdefault(key, []).append(v)

    def run_zeroshot():
        for b in (1, 8):
            add(f"pipeline_zeroshot_b{b}", timed(lambda: zs(files, candidate_labels=LABELS, batch_size=b), len(files)))

    def run_transformers():
        for b in (1, 8):
            best = 0.0
            for t in map(int, a.torch_threads.split(",")):
                torch.set_num_threads(t)
                v = timed(lambda: hf(files, candidate_labels=LABELS, batch_size=b), len(files))
                add(f"pipeline_transformers_b{b}_t{t}", v)
                best = max(best, v)
            add(f"pipeline_transformers_b{b}", best)

    def run_overhead():
        for b in (1, 8):
            zs.model.embed_pixel_values(pixels[b])
            add(f"encode_python_b{b}", timed(lambda: [zs.model.embed_pixel_values(pixels[b]) for _ in range(a.iters)], b * a.iters))
            r = subprocess.run([a.zeroshot, "bench", "-m", a.model, "--batch", str(b), "--iters", str(a.iters)],
                               capture_output=True, text=True, check=True)
            add(f"encode_cli_b{b}", json.loads(r.stdout.strip().splitlines()[-1])["images_per_s"])

    steps = [run_zeroshot, run_transformers, run_overhead]
    for r in range(a.rounds):
        for step in steps if r % 2 == 0 else steps[::-1]:
            step()
    med = {k: statistics.median(v) for k, v in runs.items()}
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    out = {"model": a.model, "images": len(files), "rounds": a.rounds, "cpus": os.cpu_count(), "loadavg_end": load,
           "torch": torch.__version__, "python_layer_us_per_call": layer_us, "transformers": transformers.__version__, "median_images_per_s": med,
           "runs": runs}
    print(json.dumps(out))
    print()
    print("| | batch 1 | batch 8 |")
    print("| --- | --- | --- |")
    for name, key in [("zeroshot.pipeline (files -> scores)", "pipeline_zeroshot"),
                      ("transformers pipeline, best torch threads", "pipeline_transformers"),
                      ("Model.embed_pixel_values (Python)", "encode_python"),
                      ("`zeroshot bench` (C++)", "encode_cli")]:
        print(f"| {name} | {med[key + '_b1']:.2f} | {med[key + '_b8']:.2f} |")
    print(f"Python layer per call (empty batch): {layer_us:.1f} us")
    for b in (1, 8):
        print(f"batch {b}: zeroshot/transformers {med[f'pipeline_zeroshot_b{b}'] / med[f'pipeline_transformers_b{b}']:.2f}x, "
              f"Python layer overhead {100 * (1 - med[f'encode_python_b{b}'] / med[f'encode_cli_b{b}']):+.1f}%")


if __name__ == "__main__":
    sys.exit(main())
