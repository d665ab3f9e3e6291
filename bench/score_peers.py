"""CLIPScore throughput (issue 16, part 2): `zeroshot score` against torchmetrics' CLIPScore on the same checkpoint,
the same photos and the same caption, in alternating rounds of the same run.

    /usr/bin/python3 bench/score_peers.py --model /work/models-cache/vitb32 --images ../shared/datasets/imagenet-samples \
        --count 64 --rounds 3 --peer-python /work/naflexvenv/bin/python [--markdown]

Each entry is a whole process, as a user runs it: start, model load, decoding, scoring. The engine prints one score
per image (`--scale 100`, torchmetrics' scale); the peer (torchmetrics.multimodal.CLIPScore, transformers' CLIPModel
and CLIPProcessor underneath) reads the photos with Pillow, as its documentation does, and updates the metric in
batches of --batch (it encodes the caption once per image: that is how the metric is called). The peer also reports
its own time without the import and model load ("scoring only"). The mean score of both is printed next to the
speed; they differ where some cosine is negative: the engine averages the clipped per-image scores (the paper's
CLIPScore), torchmetrics clips the mean (tests/reference/clip_score_check.py compares them exactly).

The peer runs this same file with --as-peer in the peer's Python (it needs torch, transformers, torchmetrics).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_runs import loadavg  # noqa: E402  (bench/peer_runs.py)

CAPTION = "a photo of a dog"


def as_peer(model, images, batch):
    t0 = time.time()
    import numpy as np
    import torch
    from PIL import Image
    from torchmetrics.multimodal.clip_score import CLIPScore

    from transformers import CLIPModel, CLIPProcessor

    # A local folder goes in as a callable (torchmetrics >= 1.6 takes only hub ids of its list as strings).
    metric = CLIPScore(model_name_or_path=lambda: (CLIPModel.from_pretrained(model), CLIPProcessor.from_pretrained(model)))
    t1 = time.time()
    for i in range(0, len(images), batch):
        chunk = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in images[i:i + batch]]
        metric.update(chunk, [CAPTION] * len(chunk))
    score = float(metric.compute())
    t2 = time.time()
    print(json.dumps({"mean_score": score, "scoring_s": t2 - t1, "load_s": t1 - t0, "torch_threads": torch.get_num_threads()}))


def timed(cmd):
    """Runs cmd; returns (stdout, wall s, CPU s of the process: user + system)."""
    t = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    wall = time.time() - t
    # communicate() reaped the child: its rusage is in RUSAGE_CHILDREN, read as a difference by the caller.
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {err.strip()[-2000:]}")
    return out, wall


def children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True, help="a folder of photos (the first --count, sorted)")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--zeroshot", default=str(Path(__file__).resolve().parents[1] / "build" / "zeroshot"))
    ap.add_argument("--peer-python", required=True)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--as-peer", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    images = sorted(str(p) for p in Path(a.images).iterdir() if p.is_file())[: a.count]
    if a.as_peer:
        return as_peer(a.model, images, a.batch)

    env_note = {"load_before": loadavg()}
    ours_cmd = [a.zeroshot, "score", "-m", a.model, "--text", CAPTION, "--scale", "100", "-b", str(a.batch), "-f",
                "json", "-q"] + images
    peer_cmd = [a.peer_python, __file__, "--as-peer", "--model", a.model, "--images", a.images, "--count",
                str(a.count), "--batch", str(a.batch), "--peer-python", a.peer_python]
    rows = {"zeroshot score": [], "torchmetrics CLIPScore": []}
    means = {}
    peer_scoring = []
    # One untimed run of each first: the page cache holds the weights and the photos for both, and the engine's
    # first load has written its packed weights file (docs/quantized-format.md), as on any machine after one run.
    timed(ours_cmd)
    timed(peer_cmd)
    for _ in range(a.rounds):
        for name, cmd in (("zeroshot score", ours_cmd), ("torchmetrics CLIPScore", peer_cmd)):
            c0 = children_cpu()
            out, wall = timed(cmd)
            cpu = children_cpu() - c0
            rows[name].append((wall, cpu))
            lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
            if name == "zeroshot score":
                scores = [ln["clip_score"] for ln in lines if "clip_score" in ln]
                if len(scores) != len(images):
                    raise SystemExit(f"zeroshot score printed {len(scores)} scores for {len(images)} images")
                means[name] = lines[-1]["mean_clip_score"]
            else:
                means[name] = lines[-1]["mean_score"]
                peer_scoring.append(lines[-1]["scoring_s"])
    env_note["load_after"] = loadavg()

    result = {"images": len(images), "caption": CAPTION, "model": a.model, "rounds": a.rounds, **env_note,
              "mean_score": means, "peer_scoring_only_s_median": statistics.median(peer_scoring)}
    for name, runs in rows.items():
        walls = [w for w, _ in runs]
        cpus = [c for _, c in runs]
        result[name] = {"wall_s_median": statistics.median(walls), "cpu_s_median": statistics.median(cpus),
                        "images_per_s": len(images) / statistics.median(walls)}
    ours, peer = result["zeroshot score"], result["torchmetrics CLIPScore"]
    result["ratio_wall"] = peer["wall_s_median"] / ours["wall_s_median"]
    result["ratio_cpu"] = peer["cpu_s_median"] / ours["cpu_s_median"]
    if a.markdown:
        print(f"{len(images)} photos x \"{CAPTION}\", {a.rounds} alternating rounds, load {env_note['load_before']:.2f}"
              f" before / {env_note['load_after']:.2f} after\n")
        print("| entry | wall median s | CPU median s | images/s (whole process) | mean score (scale 100) |")
        print("|---|---|---|---|---|")
        for name in rows:
            r = result[name]
            print(f"| {name} | {r['wall_s_median']:.2f} | {r['cpu_s_median']:.2f} | {r['images_per_s']:.1f} |"
                  f" {means[name]:.4f} |")
        print(f"\nzeroshot / peer: {result['ratio_wall']:.2f}x wall, {result['ratio_cpu']:.2f}x CPU; the peer's scoring"
              f" alone (no import, no load): {result['peer_scoring_only_s_median']:.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
