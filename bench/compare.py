#!/usr/bin/python3
"""The engine against its peers on one checkpoint, plus the CLI's cold start. Standard library only.

  /usr/bin/python3 bench/compare.py --zeroshot build/zeroshot --model /tmp/vitb32 [--rounds 3] [--batches 1,8]
      [--iters 5] [--threads 2] [--onnx /tmp/onnx --onnx-name vitb32 --ort /tmp/ort] [--int8] [--cold 10]
      [--imagenet80] [--skip-peers] [--markdown]

Throughput: each round runs `zeroshot bench` (per batch size), the PyTorch peer (clip_torch.py bench, per batch size),
the ONNX Runtime peer (ort_bench.mjs, batches 1 and 8 in one process) and both peers on the engine's token ids of the
1,000 ImageNet prompts (bench/peer_texts.py, bench/ort_texts.mjs); the order of the engines flips every round so that
drift in machine load hits all of them alike. The table holds the median over rounds and the engine/peer ratios.

Cold start: `zeroshot classify chelsea.png -l <10 labels> -f json -q` as new processes with the weights in the page
cache: with --no-cache (labels encoded every time) and with the label cache warm; then with the model's files evicted
from the page cache first (posix_fadvise DONTNEED, what `vmtouch -e` does; `fincore` shows it worked). Wall time and
peak RSS (wait4's ru_maxrss) of each run. --imagenet80 also times the label embeddings of 1,000 ImageNet classes x 80
templates (bench/label_cache_bench, built next to the CLI in <build>/bench/), first (empty cache) and second call.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = "/work/shared/tools"
LABELS10 = "cat,dog,car,bird,fish,tree,house,boat,plane,horse"


def sh(cmd, env=None, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object in output: " + text[-500:])


def timed_run(cmd, env=None):
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed: {err.strip()[-1000:]}")
    return wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def evict(paths):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached_fraction(path):
    """Share of the file's pages in the page cache, from util-linux fincore; None when unavailable."""
    try:
        r = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES,SIZE", path],
                           capture_output=True, text=True)
        res, size = r.stdout.split()[:2]
        return int(res) / max(1, int(size))
    except (OSError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zeroshot", default=os.path.join(HERE, "..", "build", "zeroshot"))
    ap.add_argument("--model", default="/tmp/vitb32")
    ap.add_argument("--onnx", default="/tmp/onnx")
    ap.add_argument("--onnx-name", default="vitb32")
    ap.add_argument("--ort", default="/tmp/ort")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--int8", action="store_true", help="also the engine's int8 and bf16, and ORT's int8 vision tower")
    ap.add_argument("--cold", type=int, default=10, help="runs per cold-start case (0: skip)")
    ap.add_argument("--cold-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the cold-start runs (e.g. ZEROSHOT_KERNELS=generic)")
    ap.add_argument("--imagenet80", action="store_true")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    a = ap.parse_args()

    zs = os.path.abspath(a.zeroshot)
    batches = [int(b) for b in a.batches.split(",")]
    precisions = ["f32"] + (["bf16", "int8"] if a.int8 else [])
    facts = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "loadavg_start": loadavg(), "cpu": cpu_model(),
             "nproc": os.cpu_count(), "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
    tmp = tempfile.mkdtemp(prefix="zs_compare_")
    ids_file = os.path.join(tmp, "imagenet_ids.json")
    env_nocache = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "xdg"))

    # ---- throughput, alternating rounds -------------------------------------------------------------------------
    rows = {}  # (metric, batch, engine) -> [values]

    def add(metric, batch, engine, value):
        rows.setdefault((metric, batch, engine), []).append(value)

    def run_zeroshot():
        for prec in precisions:
            for b in batches:
                cmd = [zs, "bench", "-m", a.model, "--batch", str(b), "--iters", str(a.iters), "--threads",
                       str(a.threads), "--precision", prec, "--save-imagenet-ids", ids_file, "--format", "json"]
                r = sh(cmd, check=False)
                if r.returncode != 0:
                    print(f"zeroshot bench --precision {prec}: {r.stderr.strip()}", file=sys.stderr)
                    continue
                j = last_json(r.stdout)
                name = "zeroshot" if prec == "f32" else f"zeroshot {prec}"
                facts.setdefault("gemm_backend", j.get("gemm_backend"))
                add("images/s", b, name, j["images_per_s"])
                add("texts/s (12 tokens)", b, name, j["texts_per_s"])
                add("load s", b, name, j["load_s"])
                add("peak RSS MB", b, name, j["peak_rss_mb"])
                if b == batches[0]:
                    add("ImageNet-1000 prompts texts/s", 0, name, j["texts_per_s_imagenet1000"])
                if j.get("min_cosine_vs_f32") is not None:
                    add("min cosine vs f32", b, name, j["min_cosine_vs_f32"])

    def run_torch():
        for b in batches:
            r = sh(["/usr/bin/python3", os.path.join(TOOLS, "clip_torch.py"), "bench", a.model, "--batch", str(b),
                    "--iters", str(a.iters), "--threads", str(a.threads)])
            j = last_json(r.stdout)
            facts["pytorch"] = j.get("peer")
            add("images/s", b, "pytorch", j["images_per_s"])
            add("texts/s (12 tokens)", b, "pytorch", j["texts_per_s"])
        if os.path.exists(ids_file):
            j = last_json(sh(["/usr/bin/python3", os.path.join(HERE, "peer_texts.py"), a.model, ids_file,
                              "--threads", str(a.threads)]).stdout)
            add("ImageNet-1000 prompts texts/s", 0, "pytorch", j["texts_per_s_imagenet1000"])

    def run_ort():
        cmd = ["node", os.path.join(TOOLS, "ort_bench.mjs"), "--ort", a.ort, "--onnx", a.onnx, "--model", a.onnx_name,
               "--threads", str(a.threads), "--spin", "0", "--iters", str(a.iters),
               "--batches", ",".join(map(str, batches))] + (["--int8"] if a.int8 else [])
        r = sh(cmd, check=False)  # exits 1 when its own correctness check fails; the timings still count
        j = last_json(r.stdout)
        facts["onnxruntime"] = j.get("peer")
        add("load s", batches[0], "onnxruntime", j.get("load_s"))
        for b in batches:
            row = j["bench"].get(f"batch{b}", {})
            add("images/s", b, "onnxruntime", row.get("images_per_s"))
            add("texts/s (12 tokens)", b, "onnxruntime", row.get("texts_per_s_L12"))
            if a.int8:
                add("images/s", b, "onnxruntime int8", row.get("int8_images_per_s"))
        if os.path.exists(ids_file):
            j = last_json(sh(["node", os.path.join(HERE, "ort_texts.mjs"), "--ids", ids_file, "--ort", a.ort,
                              "--onnx", a.onnx, "--model", a.onnx_name, "--threads", str(a.threads),
                              "--spin", "0"]).stdout)
            add("ImageNet-1000 prompts texts/s", 0, "onnxruntime", j["texts_per_s_imagenet1000"])

    engines = [run_zeroshot] + ([] if a.skip_peers else [run_torch, run_ort])
    for r in range(a.rounds):
        order = engines if r % 2 == 0 else list(reversed(engines))
        if r == 0 and not os.path.exists(ids_file):
            order = [run_zeroshot] + [e for e in order if e is not run_zeroshot]  # the peers need its ids
        for e in order:
            e()
        print(f"round {r + 1}/{a.rounds} done (load {loadavg()})", file=sys.stderr)

    # ---- cold start -------------------------------------------------------------------------------------------------
    cold = []
    if a.cold > 0:
        image = "/work/shared/fixtures/images/chelsea.png"
        base = [zs, "classify", image, "-m", a.model, "-l", LABELS10, "-f", "json", "-q", "--threads", str(a.threads)]
        model_files = [os.path.join(a.model, f) for f in os.listdir(a.model) if os.path.isfile(os.path.join(a.model, f))]
        weights = os.path.join(a.model, "model.safetensors")
        env_cold = dict(env_nocache, **dict(kv.split("=", 1) for kv in a.cold_env))
        timed_run(base, env_cold)  # page cache and label cache warm
        cases = [("label cache off (--no-cache)", base + ["--no-cache"], False),
                 ("label cache warm", base, False),
                 ("label cache warm, weights evicted from the page cache", base, True)]
        for name, cmd, do_evict in cases:
            walls, rss, cpus, resident = [], [], [], []
            for _ in range(a.cold):
                if do_evict:
                    evict(model_files)
                    resident.append(cached_fraction(weights))
                w, m, c = timed_run(cmd, env_cold)
                walls.append(w)
                rss.append(m)
                cpus.append(c)
            known = [x for x in resident if x is not None]
            cold.append({"case": name, "runs": a.cold, "wall_min_s": min(walls), "wall_median_s": med(walls),
                         "cpu_median_s": med(cpus), "peak_rss_mb": max(rss),
                         "resident_before": max(known) if known else None})
        facts["weights_mb"] = os.path.getsize(weights) / 1e6 if os.path.exists(weights) else None

    imagenet80 = None
    if a.imagenet80:
        tool = os.path.join(os.path.dirname(zs), "bench", "label_cache_bench")
        cmd = [tool, a.model, "--labels", "imagenet", "--templates", "imagenet80", "--cache-dir",
               os.path.join(tmp, "cache80"), "--threads", str(a.threads)]
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            j = last_json(sh(cmd).stdout)
            j["wall_s"] = time.perf_counter() - t0
            runs.append(j)
        imagenet80 = {"first_s": runs[0]["label_embeddings_s"], "second_s": runs[1]["label_embeddings_s"],
                      "first_wall_s": runs[0]["wall_s"], "second_wall_s": runs[1]["wall_s"],
                      "second_cached": runs[1]["cached"], "first_rss_mb": runs[0]["peak_rss_mb"],
                      "second_rss_mb": runs[1]["peak_rss_mb"]}

    facts["loadavg_end"] = loadavg()

    # ---- report -----------------------------------------------------------------------------------------------------
    names = ["zeroshot"] + [f"zeroshot {p}" for p in precisions[1:]]
    peers = [] if a.skip_peers else ["pytorch", "onnxruntime"] + (["onnxruntime int8"] if a.int8 else [])
    cols = names + peers + [f"zeroshot/{p}" for p in peers[:2]]
    metrics = []
    for (m, b, _) in rows:
        if (m, b) not in metrics:
            metrics.append((m, b))
    table = []
    for m, b in metrics:
        vals = {e: med(rows.get((m, b, e), [])) for e in names + peers}
        line = [m, "all 1000" if b == 0 else str(b)] + [fmt(vals[e], 6 if "cosine" in m else 2) for e in names + peers]
        for p in peers[:2]:
            ours, theirs = vals["zeroshot"], vals[p]
            line.append(fmt(ours / theirs) if ours and theirs and "RSS" not in m and "load" not in m else "-")
        table.append(line)
    header = ["metric (median of rounds)", "batch"] + cols

    def emit(h, body):
        if a.markdown:
            print("| " + " | ".join(h) + " |")
            print("|" + "|".join("---" for _ in h) + "|")
            for row in body:
                print("| " + " | ".join(row) + " |")
        else:
            w = [max(len(str(x)) for x in col) for col in zip(h, *body)]
            for row in [h] + body:
                print("  ".join(str(x).ljust(n) for x, n in zip(row, w)))
        print()

    print("Machine: " + ", ".join(f"{k}: {v}" for k, v in facts.items() if v is not None))
    print()
    emit(header, table)
    if cold:
        emit(["cold start: classify 1 image x 10 labels" + (f" ({' '.join(a.cold_env)})" if a.cold_env else ""),
              "runs", "wall min s", "wall median s", "CPU (user+sys) median s", "peak RSS MB",
              "weights resident before run"],
             [[c["case"], str(c["runs"]), fmt(c["wall_min_s"], 3), fmt(c["wall_median_s"], 3),
               fmt(c["cpu_median_s"], 3), fmt(c["peak_rss_mb"], 0),
               "-" if c["resident_before"] is None else f"{100 * c['resident_before']:.0f}%"] for c in cold])
    if imagenet80:
        emit(["label embeddings, ImageNet 1000 classes x 80 templates", "first call s", "second call s",
              "first process wall s", "second process wall s", "second from cache", "first peak RSS MB",
              "second peak RSS MB"],
             [["bench/label_cache_bench", fmt(imagenet80["first_s"], 3), fmt(imagenet80["second_s"], 3),
               fmt(imagenet80["first_wall_s"], 3), fmt(imagenet80["second_wall_s"], 3),
               str(imagenet80["second_cached"]).lower(), fmt(imagenet80["first_rss_mb"], 0),
               fmt(imagenet80["second_rss_mb"], 0)]])
    json.dump({"facts": facts, "rows": {f"{m}|{b}|{e}": v for (m, b, e), v in rows.items()}, "cold": cold,
               "imagenet80": imagenet80}, open(os.path.join(tmp, "results.json"), "w"), indent=1)
    print(f"raw results: {os.path.join(tmp, 'results.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
