#!/usr/bin/python3
"""Two photo_stages binaries (before / after a change) in alternating rounds; medians of each stage's CPU ms per
photo. photo_stages times with the process's CPU clock, so this is the comparison to trust on a loaded machine.

    python3 bench/photo_stages_ab.py --before OLD_BUILD/bench/photo_stages --after build/bench/photo_stages \\
        --model /work/models-cache/photos-vitb32 --photos /tmp/photos-jpeg [--rounds 3] [--precision int8]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="int8")
    a = ap.parse_args()
    bins = {"before": a.before, "after": a.after}
    runs = {k: [] for k in bins}
    loads = []
    for r in range(a.rounds):
        loads.append(os.getloadavg()[0])
        for k in (["before", "after"] if r % 2 == 0 else ["after", "before"]):
            out = subprocess.run([bins[k], a.model, a.photos, "--precision", a.precision], capture_output=True,
                                 text=True, check=True).stdout
            j = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
            runs[k].append(j)
            print(json.dumps({"round": r, "binary": k, **j}), file=sys.stderr, flush=True)
    print("load average at each round's start: " + ", ".join(f"{x:.1f}" for x in loads))
    print("\n| binary | path | read | decode | orient | rgb | resize | all pixel work | encoder |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, v in runs.items():
        for path in ("exact_ms", "fast_ms"):
            med = {s: statistics.median(x[path][s] for x in v) for s in v[0][path]}
            enc = statistics.median(x["encode_cpu_ms"] for x in v) if path == "exact_ms" else None
            cells = " | ".join(f"{med[s]:.1f}" for s in ("read", "decode", "orient", "rgb", "resize"))
            print(f"| {k} | {path[:-3]} | {cells} | {sum(med.values()):.1f} | {f'{enc:.1f}' if enc else ''} |")
        if "streamed_ms" in v[0]:  # round 3: decode + resize in one pass (the model's exact path)
            rd = statistics.median(x["streamed_ms"]["read"] for x in v)
            dr = statistics.median(x["streamed_ms"]["decode_resize"] for x in v)
            same = all(x["streamed_same"] for x in v)
            print(f"| {k} | exact, streamed (same bytes: {same}) | {rd:.1f} | decode + resize {dr:.1f} | | | | "
                  f"{rd + dr:.1f} | |")
        print(f"| {k} | fast vs exact | cosine min {v[0]['cos_min']}, mean {v[0]['cos_mean']}, "
              f"recall@10 {v[0]['recall_at_10']} | | | | | | |")


if __name__ == "__main__":
    main()
