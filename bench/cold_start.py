#!/usr/bin/python3
"""Cold start of `zeroshot classify`: one image (one audio clip for a CLAP model) x 10 labels as a new process, label
cache warm, weights in the page cache; several builds of the CLI side by side and the PyTorch peer's load + first
inference, in alternating rounds (so that drift in the machine's load hits every entry alike). Standard library only.

  /usr/bin/python3 bench/cold_start.py --model /work/models-cache/vitb32 --runs 10 \\
      --zeroshot before=/path/to/old/zeroshot --zeroshot after=build/zeroshot [--peer] [--markdown]

Per entry: the median and minimum wall time of the whole process, its CPU time (user + system, from wait4: on a
shared machine the wall time mostly measures waiting for a CPU; on an idle 2-core machine it is at most the CPU
time) and the peak RSS. The PyTorch peer (/work/shared/tools/clip_torch.py, Debian's torch) is a process that
imports torch, reads the checkpoint and encodes one random image: what the engine does with a warm label cache.
The load average (/proc/loadavg) before and after is printed with the table.
The warm-up run of each build also writes what that build caches besides the label embeddings (since issue 15 part
2: the packed weights file, $XDG_CACHE_HOME/zeroshot/packed-weights/), so the timed runs measure later loads; set
XDG_CACHE_HOME to keep those files out of ~/.cache; `--zeroshot packing=build/zeroshot,ZEROSHOT_PACKED_WEIGHTS=0`
times the same build packing at load.
A CLAP folder (config.json model_type "clap") classifies a 10 s audio clip against 10 sound labels instead; the
PyTorch peer is CLIP only.
"""
import argparse, json, os, statistics, subprocess, sys, time

TOOLS = "/work/shared/tools"
IMAGE = "/work/shared/fixtures/images/chelsea.png"
LABELS10 = "cat,dog,car,bird,fish,tree,house,boat,plane,horse"
AUDIO = "/work/shared/fixtures/audio/exact_10s.wav"
AUDIO_LABELS10 = "dog barking,rain,speech,music,siren,engine,birds singing,applause,footsteps,wind"
PEER = """
import sys, torch
sys.path.insert(0, {tools!r})
import clip_torch
torch.set_num_threads(1)
m = clip_torch.Clip({model!r})
s = m.cfg["vision_config"]["image_size"]
m.image_features(torch.randn(1, 3, s, s))
"""


def timed_run(cmd, env=None):
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one process; exits on failure."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"cold_start.py: {' '.join(cmd)} failed: {err.strip()[-1000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face CLIP folder (config.json + model.safetensors)")
    ap.add_argument("--zeroshot", action="append", required=True, metavar="NAME=PATH[,KEY=VALUE...]",
                    help="a build of the CLI to time (repeatable), e.g. after=build/zeroshot; KEY=VALUE pairs after "
                         "the path: that entry's own environment, "
                         "e.g. packing=build/zeroshot,ZEROSHOT_PACKED_WEIGHTS=0")
    ap.add_argument("--runs", type=int, default=10, help="rounds (each runs every entry once)")
    ap.add_argument("--threads", type=int, default=0, help="zeroshot --threads (0: all cores)")
    ap.add_argument("--image", help=f"the input to classify (default: {IMAGE}, or {AUDIO} for CLAP)")
    ap.add_argument("--peer", action="store_true", help="also the PyTorch peer (/usr/bin/python3 + Debian torch)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for zeroshot")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    a = ap.parse_args()
    with open(os.path.join(a.model, "config.json")) as f:
        audio = json.load(f).get("model_type") == "clap"
    if audio and a.peer:
        sys.exit("cold_start.py: --peer times the PyTorch CLIP peer; this is a CLAP model")
    a.image = a.image or (AUDIO if audio else IMAGE)
    labels = AUDIO_LABELS10 if audio else LABELS10

    env = dict(os.environ, **dict(kv.split("=", 1) for kv in a.env))
    entries = []
    for spec in a.zeroshot:
        name, _, path = spec.partition("=")
        if not path:
            name, path = os.path.basename(spec), spec
        path, *pairs = path.split(",")
        cmd = [path, "classify", a.image, "-m", a.model, "-l", labels, "-f", "json", "-q",
               "--threads", str(a.threads)]
        entries.append((f"zeroshot {name}", cmd, dict(env, **dict(kv.split("=", 1) for kv in pairs))))
    if a.peer:
        code = PEER.format(tools=TOOLS, model=os.path.abspath(a.model))
        peer_env = dict(os.environ, OMP_NUM_THREADS="1",
                        OPENBLAS_NUM_THREADS=str(a.threads or os.cpu_count() or 1))
        entries.append(("PyTorch peer (import torch, load, 1 image)", ["/usr/bin/python3", "-c", code], peer_env))

    for _, cmd, e in entries:  # warm-up: page cache, label cache (written by the first run of each build)
        timed_run(cmd, e)
    load_before = loadavg()
    results = {name: [] for name, _, _ in entries}
    for r in range(a.runs):
        order = entries if r % 2 == 0 else entries[::-1]
        for name, cmd, e in order:
            results[name].append(timed_run(cmd, e))
    load_after = loadavg()

    rows = []
    for name, _, _ in entries:
        walls = [x[0] for x in results[name]]
        cpus = [x[1] for x in results[name]]
        rss = [x[2] for x in results[name]]
        rows.append({"entry": name, "runs": len(walls), "wall_median_s": statistics.median(walls),
                     "wall_min_s": min(walls), "cpu_median_s": statistics.median(cpus),
                     "peak_rss_mb": max(rss)})
    facts = {"model": a.model, "image": a.image, "labels": labels, "threads": a.threads,
             "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(),
             "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not a.markdown:
        print(json.dumps({"facts": facts, "rows": rows}))
        return 0
    print(f"cold start, classify 1 {'audio clip' if audio else 'image'} x 10 labels, label cache warm, weights in "
          f"the page cache; {a.runs} "
          f"alternating rounds; load average {load_before} before, {load_after} after ({facts['date']})\n")
    print("| entry | runs | wall median s | wall min s | CPU median s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['entry']} | {r['runs']} | {r['wall_median_s']:.3f} | {r['wall_min_s']:.3f} | "
              f"{r['cpu_median_s']:.3f} | {r['peak_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
