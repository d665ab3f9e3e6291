#!/usr/bin/python3
"""Copy a Hugging Face model folder, re-saving model.safetensors as pytorch_model.bin with torch.save (as
transformers' save_pretrained(safe_serialization=False) does), for bench/load_bench. Debian python3-torch.

  make_bin_copy.py SRC_DIR DST_DIR [--legacy]

The safetensors file is parsed here (8-byte header length, JSON header, raw little-endian data) so that only
torch is needed. --legacy: torch.save's pre-1.6 format (_use_new_zipfile_serialization=False).
"""
import argparse, collections, json, os, shutil, struct

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--legacy", action="store_true")
args = ap.parse_args()
os.makedirs(args.dst, exist_ok=True)
for f in os.listdir(args.src):
    if f != "model.safetensors":
        shutil.copy(os.path.join(args.src, f), os.path.join(args.dst, f))
with open(os.path.join(args.src, "model.safetensors"), "rb") as f:
    data = f.read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8 : 8 + n])
body = memoryview(data)[8 + n :]
sd = collections.OrderedDict()
for name, info in header.items():
    if name == "__metadata__":
        continue
    b, e = info["data_offsets"]
    t = torch.frombuffer(bytearray(body[b:e]), dtype=DTYPES[info["dtype"]]) if e > b else torch.empty(0, dtype=DTYPES[info["dtype"]])
    sd[name] = t.reshape(info["shape"]).clone()
torch.save(sd, os.path.join(args.dst, "pytorch_model.bin"), _use_new_zipfile_serialization=not args.legacy)
print("wrote", os.path.join(args.dst, "pytorch_model.bin"), len(sd), "tensors")
