#!/usr/bin/python3
"""CLAP throughput: zeroshot vs PyTorch/transformers (ClapModel) on one checkpoint, same run, alternating rounds
(issue 15, part 5).

    /usr/bin/python3 ../shared/tools/make_random_checkpoint.py ../shared/tools/manifests/clap-htsat-unfused /tmp/clap-unfused
    /usr/bin/python3 bench/clap_peers.py --zeroshot build/zeroshot --model /tmp/clap-unfused --rounds 3 [--json OUT]

Both runners do the same work on the same inputs: eight different 10 s clips at 48 kHz (tones + noise, the formula
of `zeroshot bench`), written as 16-bit WAV files, read, turned into features and encoded: clips/s at batch 1 and at
batch 8 (reading and features included, as a user runs it), then texts/s for a batch of 8 sequences of 12 token ids
(the encoder alone). zeroshot: `zeroshot bench -f json` (its own clips, same formula). transformers: the
ClapFeatureExtractor of the checkpoint's preprocessor_config.json and ClapModel.get_audio_features /
get_text_features in float32 under torch.inference_mode(), the WAVs read with the standard library's `wave`.
Every measurement is its own process (load, one untimed warm-up, then timed calls) on --threads threads; round r
runs the runners in order, round r+1 reversed, so that a change in the machine's load falls on both alike. Prints
the JSON of every run on stderr, then the JSON summary and a Markdown table (medians over rounds) on stdout.
"""
import argparse
import json
import statistics
import subprocess
import sys

from peer_runs import loadavg, run_json

PEER = r'''
import json, math, os, sys, tempfile, time, wave
import numpy as np
import torch
from transformers import ClapFeatureExtractor, ClapModel
model_dir, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
t0 = time.time()
model = ClapModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
fe = ClapFeatureExtractor.from_pretrained(model_dir)
load_s = time.time() - t0
rate = 48000
rng = np.random.default_rng(99)
tmp = tempfile.mkdtemp()
paths = []
for c in range(8):
    f0 = 110.0 * (c + 1)
    i = np.arange(rate * 10)
    x = 0.3 * np.sin(2 * math.pi * f0 * i / rate) + 0.2 * np.sin(2 * math.pi * 3.7 * f0 * i / rate)
    x = x + rng.normal(0, 0.05, x.shape)
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    p = os.path.join(tmp, f"clip{c}.wav")
    with wave.open(p, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate); w.writeframes(pcm.tobytes())
    paths.append(p)

def read(p):
    with wave.open(p, "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0

def embed(batch):
    feats = fe([read(p) for p in batch], sampling_rate=rate, return_tensors="pt")
    with torch.inference_mode():
        return model.get_audio_features(**feats)

def clips_per_s(batch):
    groups = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    embed(groups[0])  # warm-up
    t = time.time()
    for _ in range(iters):
        for g in groups:
            embed(g)
    return len(paths) * iters / (time.time() - t)

c1, c8 = clips_per_s(1), clips_per_s(8)
ids = torch.tensor([[0] + [320 + (i * 7 + k) % 4000 for k in range(10)] + [2] for i in range(8)])
mask = torch.ones_like(ids)
with torch.inference_mode():
    model.get_text_features(input_ids=ids, attention_mask=mask)
    t = time.time()
    for _ in range(iters):
        model.get_text_features(input_ids=ids, attention_mask=mask)
texts = 8 * iters / (time.time() - t)
print(json.dumps({"runner": "transformers", "load_s": load_s, "clips_per_s_batch1": c1, "clips_per_s_batch8": c8,
                  "texts_per_s": texts}))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zeroshot", default="build/zeroshot")
    ap.add_argument("--model", default="/tmp/clap-unfused")
    ap.add_argument("--python", default="/work/refvenv/bin/python", help="a Python with transformers + torch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="f32,bf16,int8", help="of zeroshot")
    ap.add_argument("--json", help="also write the summary here")
    a = ap.parse_args()

    runners = [("transformers f32", [a.python, "-c", PEER, a.model, str(a.threads), str(a.iters)])]
    for p in a.precisions.split(","):
        runners.append((f"zeroshot {p}", [a.zeroshot, "bench", "-m", a.model, "--iters", str(a.iters), "--threads",
                                          str(a.threads), "--precision", p, "-f", "json"]))
    runs = {name: [] for name, _ in runners}
    loads = []
    for r in range(a.rounds):
        order = runners if r % 2 == 0 else list(reversed(runners))
        for name, cmd in order:
            before = loadavg()
            j = run_json(cmd)
            j["load_before"] = before
            loads.append(before)
            runs[name].append(j)
            print(json.dumps({"round": r, "runner": name, **j}), file=sys.stderr, flush=True)

    keys = ["clips_per_s_batch1", "clips_per_s_batch8", "texts_per_s"]
    summary = {"model": a.model, "threads": a.threads, "rounds": a.rounds, "iters": a.iters,
               "load_min": min(loads), "load_max": max(loads), "runners": {}}
    for name, js in runs.items():
        summary["runners"][name] = {k: statistics.median(j[k] for j in js) for k in keys}
    base = summary["runners"]["transformers f32"]
    print(json.dumps(summary, indent=1))
    print("| runner | clips/s batch 1 | clips/s batch 8 | texts/s (8 x 12 tokens) |")
    print("|---|---|---|---|")
    for name, m in summary["runners"].items():
        cells = [f"{m[k]:.2f} ({m[k] / base[k]:.2f}x)" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"(medians of {a.rounds} alternating rounds; load average {min(loads):.1f}-{max(loads):.1f} on "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
