#!/usr/bin/python3
"""End to end on a folder of phone photos (bench/make_photo_library.py): `zeroshot index` into a fresh database,
model load included, against the encoder's own images/s and an rclip-style pipeline, same run, alternating rounds.

    /work/models-cache/photos-venv/bin/python bench/photo_library.py --zeroshot build/zeroshot \\
        --model /work/models-cache/photos-vitb32 --onnx /work/models-cache/onnx/photos-vitb32 \\
        --photos /tmp/photos-jpeg [--baseline OLD_ZEROSHOT] [--rounds 3] [--precisions int8,f32] [--json OUT]

Runners, each its own process, timed by wall clock from start to exit:
  index-<p>            zeroshot index --precision p (exact decoding, the default) into a new database
  index-<p>-fast       the same with --fast-decode (Pillow's JPEG draft, opt-in)
  baseline-index-<p>   --baseline's binary (the code before this change), exact
  encoder-<p>          zeroshot bench --batch 8 --iters 5: images_per_s of the encoder alone (random pixels)
  rclip-<p>            Pillow (Image.open, convert RGB, ImageOps.exif_transpose, resize shortest edge BICUBIC,
                       center crop, normalize in numpy) + ONNX Runtime's visual(.int8).onnx at batch 8, 2 threads,
                       no spinning (ORT's best setting on 2 vCPUs); int8 uses export_onnx.py --int8's dynamic int8
Round r runs the list in order, round r+1 reversed; the table shows medians over rounds and each round's load
average, and each process's CPU time per photo (user + system of all its threads: on a loaded machine the wall
times mostly measure the other jobs, the CPU times much less). Every index row also gives its fraction of the
encoder's images/s (the issue's "0.16 today").
Needs Pillow, numpy and onnxruntime (a virtualenv; see docs/benchmarks.md).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RCLIP = r"""
import sys, time, json
from pathlib import Path
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps
onnx_file, photos, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
sess = ort.InferenceSession(onnx_file, so, providers=["CPUExecutionProvider"])
mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
def load(p, s=224):
    img = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    w, h = img.size
    if w <= h: nw, nh = s, int(s * h / w)
    else: nw, nh = int(s * w / h), s
    img = img.resize((nw, nh), Image.BICUBIC)
    l, t = (nw - s) // 2, (nh - s) // 2
    a = np.asarray(img.crop((l, t, l + s, t + s)), np.float32) / 255.0
    return ((a - mean) / std).transpose(2, 0, 1)
files = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
out = []
for i in range(0, len(files), 8):
    x = np.stack([load(p) for p in files[i:i + 8]])
    out.append(sess.run(None, {sess.get_inputs()[0].name: x})[0])
print(json.dumps({"images": sum(len(o) for o in out)}))
"""


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd):
    """Wall seconds, the last JSON line of stdout, and the process's CPU seconds (user + system, all threads: what
    other jobs on a loaded machine take from the wall time does not count)."""
    t, c = time.time(), children_cpu_s()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.time() - t, children_cpu_s() - c
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    return wall, (json.loads(lines[-1]) if lines else {}), cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zeroshot", required=True)
    ap.add_argument("--baseline", help="an older zeroshot binary to run the exact index with, for before/after")
    ap.add_argument("--model", required=True)
    ap.add_argument("--onnx", required=True, help="export_onnx.py's output folder (visual.onnx, visual.int8.onnx)")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precisions", default="int8,f32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--python", default=sys.executable, help="Python with Pillow, numpy and onnxruntime")
    ap.add_argument("--json", help="write every measurement here")
    a = ap.parse_args()
    n_photos = sum(1 for p in Path(a.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    tmp = Path(tempfile.mkdtemp(prefix="zs-photo-bench-"))
    script = tmp / "rclip_style.py"
    script.write_text(RCLIP)
    env_threads = ["--threads", str(a.threads)]

    runners = {}
    for p in a.precisions.split(","):
        def index(binary, fast, p=p):
            db = tmp / "index.db"
            for f in tmp.glob("index.db*"):
                f.unlink()
            cmd = [binary, "index", "-q", "--format", "json", "--db", str(db), "-m", a.model, "--precision", p,
                   "--batch", "8", *env_threads, a.photos] + (["--fast-decode"] if fast else [])
            wall, j, cpu = timed(cmd)
            assert j.get("embedded") == n_photos, j
            return {"wall_s": wall, "images_per_s": n_photos / wall, "cpu_ms_per_photo": 1000 * cpu / n_photos}
        runners[f"index-{p}"] = lambda index=index: index(a.zeroshot, False)
        runners[f"index-{p}-fast"] = lambda index=index: index(a.zeroshot, True)
        if a.baseline:
            runners[f"baseline-index-{p}"] = lambda index=index: index(a.baseline, False)

        def encoder(p=p):
            wall, j, _ = timed([a.zeroshot, "bench", "-m", a.model, "--precision", p, "--batch", "8", "--iters", "5",
                             "--no-imagenet", *env_threads])
            return {"wall_s": wall, "images_per_s": j["images_per_s"]}
        runners[f"encoder-{p}"] = encoder

        def rclip(p=p):
            onnx = Path(a.onnx) / ("visual.int8.onnx" if p == "int8" else "visual.onnx")
            wall, j, cpu = timed([a.python, str(script), str(onnx), a.photos, str(a.threads)])
            assert j["images"] == n_photos, j
            return {"wall_s": wall, "images_per_s": n_photos / wall, "cpu_ms_per_photo": 1000 * cpu / n_photos}
        runners[f"rclip-{p}"] = rclip

    names = list(runners)
    results = {k: [] for k in names}
    loads = []
    for r in range(a.rounds):
        order = names if r % 2 == 0 else names[::-1]
        loads.append(os.getloadavg()[0])
        for k in order:
            m = runners[k]()
            results[k].append(m)
            print(json.dumps({"round": r, "runner": k, **m}), file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(m["images_per_s"] for m in v) for k, v in results.items()}
    summary = {"photos": n_photos, "rounds": a.rounds, "load_avg_1min": loads, "median_images_per_s": med}
    print(f"\n{n_photos} photos, {a.rounds} rounds, load average at each round's start: "
          + ", ".join(f"{x:.1f}" for x in loads))
    cpu = {k: statistics.median(m["cpu_ms_per_photo"] for m in v) for k, v in results.items()
           if all("cpu_ms_per_photo" in m for m in v)}
    summary["median_cpu_ms_per_photo"] = cpu
    print(json.dumps(summary))
    print("\n| runner | images/s (median) | per round | vs encoder | vs rclip-style | CPU ms/photo (median) | "
          "CPU vs rclip-style |\n| --- | --- | --- | --- | --- | --- | --- |")
    for k in names:
        p = next(x for x in ("int8", "bf16", "f32") if x in k.split("-"))
        enc, rc = med.get(f"encoder-{p}"), med.get(f"rclip-{p}")
        vs_enc = f"{med[k] / enc:.3f}" if enc and "index" in k else ""
        vs_rc = f"{med[k] / rc:.2f}x" if rc and "index" in k else ""
        rounds = " / ".join(f"{m['images_per_s']:.2f}" for m in results[k])
        c, c_rc = cpu.get(k), cpu.get(f"rclip-{p}")
        cpu_col = f"{c:.0f}" if c else ""
        cpu_vs = f"{c_rc / c:.2f}x" if c and c_rc and "index" in k else ""
        print(f"| {k} | {med[k]:.2f} | {rounds} | {vs_enc} | {vs_rc} | {cpu_col} | {cpu_vs} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
