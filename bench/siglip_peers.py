#!/usr/bin/python3
"""SigLIP B/16-224 throughput: zeroshot vs PyTorch/transformers vs ONNX Runtime on one checkpoint, same run,
alternating rounds (issue 12's benchmark acceptance), and our CLIP ViT-B/16 in the same rounds.

    /work/refvenv/bin/python bench/make_random_siglip.py /tmp/siglip-b16 --spiece SPIECE
    /work/refvenv/bin/python bench/siglip_onnx_export.py /tmp/siglip-b16 /tmp/onnx/siglip-b16
    /usr/bin/python3 /work/shared/tools/make_random_clip.py ViT-B-16 /tmp/vitb16
    /usr/bin/python3 bench/siglip_peers.py --zeroshot build/zeroshot --siglip /tmp/siglip-b16 \\
        --onnx /tmp/onnx/siglip-b16 --clip /tmp/vitb16 --rounds 3 [--precisions f32,bf16,int8] [--json OUT]

Every measurement is its own process (model loaded, one untimed warm-up call, then timed calls): images/s at
batch 1 and 8 (random pixel values), texts/s at batch 8 (12 tokens; the SigLIP peers run them padded to 64 with the
attention mask, as the zero-shot pipeline does, the engine skips the masked padding but the pooled last row), all on
--threads threads. Round r runs the list in order, round r+1 reversed, so that a change in the machine's load
falls on every runner alike; the table shows medians over rounds and the load average seen in each. Prints the
JSON of every run on stderr as it goes, then the JSON summary and a Markdown table on stdout.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from peer_runs import loadavg, run_json

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zeroshot", default="build/zeroshot")
    ap.add_argument("--siglip", default="/tmp/siglip-b16")
    ap.add_argument("--onnx", default="/tmp/onnx/siglip-b16")
    ap.add_argument("--clip", default="/tmp/vitb16", help="CLIP ViT-B/16 folder ('' to skip)")
    ap.add_argument("--ort", default="/tmp/ort", help="folder with node_modules/onnxruntime-node")
    ap.add_argument("--python", default="/work/refvenv/bin/python", help="a Python with transformers + torch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters1", type=int, default=3, help="timed calls at batch 1")
    ap.add_argument("--iters8", type=int, default=1, help="timed calls at batch 8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="f32,bf16,int8", help="of zeroshot on SigLIP")
    ap.add_argument("--json", help="also write the summary here")
    a = ap.parse_args()

    zs = lambda model, prec, b, it: [a.zeroshot, "bench", "-m", model, "--precision", prec, "--batch", str(b),  # noqa
                                     "--iters", str(it), "--threads", str(a.threads), "--no-imagenet", "-f", "json"]
    torch_cmd = lambda b, it, texts: [a.python, str(HERE / "siglip_torch_peer.py"), a.siglip, "--batch", str(b),  # noqa
                                      "--iters", str(it), "--threads", str(a.threads)] + (["--texts"] if texts else [])
    ort_cmd = lambda b, it, texts: ["node", str(HERE / "ort_siglip.mjs"), "--ort", a.ort, "--onnx", a.onnx,  # noqa
                                    "--batch", str(b), "--iters", str(it), "--threads", str(a.threads)] + \
        (["--texts"] if texts else [])

    # (runner, metric, batch, command, key in its JSON). One zeroshot process per batch gives images and texts.
    jobs = []
    for prec in a.precisions.split(","):
        jobs.append((f"zeroshot {prec}", 1, zs(a.siglip, prec, 1, a.iters1)))
        jobs.append((f"zeroshot {prec}", 8, zs(a.siglip, prec, 8, a.iters8)))
    jobs += [("pytorch", 1, torch_cmd(1, a.iters1, False)), ("pytorch", 8, torch_cmd(8, a.iters8, False)),
             ("pytorch", "t8", torch_cmd(8, a.iters1, True))]
    if a.onnx:
        jobs += [("onnxruntime", 1, ort_cmd(1, a.iters1, False)), ("onnxruntime", 8, ort_cmd(8, a.iters8, False)),
                 ("onnxruntime", "t8", ort_cmd(8, a.iters1, True))]
    if a.clip:
        jobs += [("zeroshot CLIP ViT-B/16 f32", 1, zs(a.clip, "f32", 1, a.iters1)),
                 ("zeroshot CLIP ViT-B/16 f32", 8, zs(a.clip, "f32", 8, a.iters8))]

    env = dict(os.environ)
    results = {}  # (runner, metric, batch) -> [values]
    loads, runs = [], []
    t0 = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    for r in range(a.rounds):
        order = jobs if r % 2 == 0 else jobs[::-1]
        for runner, b, cmd in order:
            la = loadavg()
            j = run_json(cmd, env)
            j.update(round=r + 1, runner=runner, job_batch=b, load_before=la)
            runs.append(j)
            loads.append(la)
            print(json.dumps(j), file=sys.stderr, flush=True)
            if b == "t8":
                results.setdefault((runner, "texts/s", 8), []).append(j["texts_per_s"])
                continue
            results.setdefault((runner, "images/s", b), []).append(j["images_per_s"])
            if runner.startswith("zeroshot") and b == 8:
                results.setdefault((runner, "texts/s", 8), []).append(j["texts_per_s"])
            if j.get("min_cosine_vs_f32") is not None:
                results.setdefault((runner, "min cosine vs f32", b), []).append(j["min_cosine_vs_f32"])
            if "peak_rss_mb" in j:
                results.setdefault((runner, "peak RSS MB", b), []).append(j["peak_rss_mb"])
    t1 = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())

    med = {k: statistics.median(v) for k, v in results.items()}
    runners = list(dict.fromkeys(r for r, _, _ in jobs))
    rows = [("images/s", 1), ("images/s", 8), ("texts/s", 8), ("min cosine vs f32", 8), ("peak RSS MB", 8)]
    summary = {"start": t0, "end": t1, "rounds": a.rounds, "threads": a.threads,
               "load_average_min": min(loads), "load_average_max": max(loads),
               "load_average_median": statistics.median(loads), "cpu_count": os.cpu_count(),
               "medians": [{"runner": r, "metric": m, "batch": b, "median": med[(r, m, b)],
                            "values": results[(r, m, b)]} for (r, m, b) in results], "runs": runs}
    print(json.dumps(summary))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1) + "\n")

    def cell(r, m, b):
        v = med.get((r, m, b))
        return "-" if v is None else (f"{v:.6f}" if m.startswith("min") else f"{v:.2f}")

    def ratio(m, b, peer):
        x, y = med.get(("zeroshot f32", m, b)), med.get((peer, m, b))
        return "-" if not x or not y else f"{x / y:.2f}"

    print(f"\nRounds: {a.rounds}, {t0} to {t1}; load average {min(loads):.1f}-{max(loads):.1f} "
          f"(median {statistics.median(loads):.1f}) on {os.cpu_count()} CPUs\n")
    print("| metric (median of rounds) | batch | " + " | ".join(runners) +
          " | zeroshot f32 / pytorch | zeroshot f32 / onnxruntime |")
    print("|---" * (len(runners) + 4) + "|")
    for m, b in rows:
        if not any((r, m, b) in med for r in runners):
            continue
        print(f"| {m} | {b} | " + " | ".join(cell(r, m, b) for r in runners) +
              f" | {ratio(m, b, 'pytorch')} | {ratio(m, b, 'onnxruntime')} |")


if __name__ == "__main__":
    main()
