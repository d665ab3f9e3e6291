"""The PyTorch/transformers peer of bench/siglip_peers.py: SiglipModel.get_image_features / get_text_features.

    /work/refvenv/bin/python bench/siglip_torch_peer.py MODEL_DIR --batch N --iters N [--threads N] [--texts]

Prints one JSON line: images_per_s (random pixel values) or, with --texts, texts_per_s (12-token texts padded to
64 with the attention mask, as the zero-shot pipeline runs SiglipTokenizer's output). Threads as
shared/tools/clip_torch.py runs its peer, its fastest setting on a small machine: PyTorch's own ops on one thread,
the BLAS on --threads (set before torch loads).
"""
import argparse
import json
import os
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model_dir")
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
ap.add_argument("--texts", action="store_true")
a = ap.parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))

import torch  # noqa: E402
from transformers import SiglipModel  # noqa: E402

torch.set_num_threads(1)
t = time.perf_counter()
model = SiglipModel.from_pretrained(a.model_dir, attn_implementation="eager").eval()
load_s = time.perf_counter() - t
torch.manual_seed(0)
if a.texts:
    L = model.config.text_config.max_position_embeddings
    ids = torch.ones(a.batch, L, dtype=torch.long)  # </s> (1) pads, as SiglipTokenizer's pad_token
    ids[:, :11] = torch.randint(3, 500, (a.batch, 11))
    mask = torch.zeros_like(ids)
    mask[:, :12] = 1
    run = lambda: model.get_text_features(input_ids=ids, attention_mask=mask)  # noqa: E731
else:
    S = model.config.vision_config.image_size
    pix = torch.randn(a.batch, 3, S, S)
    run = lambda: model.get_image_features(pixel_values=pix)  # noqa: E731
with torch.no_grad():
    run()  # warm-up, untimed
    t = time.perf_counter()
    for _ in range(a.iters):
        run()
    s = time.perf_counter() - t
key = "texts_per_s" if a.texts else "images_per_s"
print(json.dumps({"peer": "pytorch " + torch.__version__, "batch": a.batch, "iters": a.iters, "load_s": load_s,
                  key: a.batch * a.iters / s, "threads": 1, "blas_threads": os.environ["OPENBLAS_NUM_THREADS"]}))
