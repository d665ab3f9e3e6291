#!/usr/bin/python3
"""PyTorch peer on the 1,000 ImageNet prompts: texts/s of clip_torch.py's text tower on the engine's token ids.

  /usr/bin/python3 bench/peer_texts.py MODEL_DIR IDS_JSON [--threads N] [--tools /work/shared/tools]

IDS_JSON comes from `zeroshot bench --save-imagenet-ids`. All prompts go in one call, padded to the longest (what the
Hugging Face pipeline does with its candidate labels). Prints one JSON line.
"""
import argparse, json, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("model_dir")
ap.add_argument("ids_json")
ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
ap.add_argument("--tools", default="/work/shared/tools")
a = ap.parse_args()
# clip_torch.py's own setting: PyTorch ops on one thread, OpenBLAS on --threads (set before torch loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
sys.path.insert(0, a.tools)
import torch  # noqa: E402
import clip_torch  # noqa: E402

torch.set_num_threads(1)
ids = json.load(open(a.ids_json))
m = clip_torch.Clip(a.model_dir)
m.text_features(ids[:8])  # warm-up
t0 = time.perf_counter()
m.text_features(ids)
dt = time.perf_counter() - t0
print(json.dumps({"peer": "pytorch " + torch.__version__, "texts": len(ids), "padded_to": max(map(len, ids)),
                  "texts_per_s_imagenet1000": len(ids) / dt}))
