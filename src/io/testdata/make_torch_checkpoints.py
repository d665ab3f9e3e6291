#!/usr/bin/env python3
"""Writes PyTorch checkpoints made by torch.save itself, for src/io/torch_checkpoint_test.cpp.

    make_torch_checkpoints.py OUTDIR [FIXTURES]      (Debian's python3-torch: /usr/bin/python3)
    make_torch_checkpoints.py --small OUTDIR         the same without the large tensor (the fuzzer's seeds:
                                                     fuzz/CMakeLists.txt; small inputs mutate fast)

OUTDIR/
  zip.bin, legacy.bin       one state dict (F32, F16, BF16, an int64 buffer, a transposed tensor, two tensors
                            sharing a storage at different offsets, a Parameter, a large F32) in the zip format
                            and in the legacy format (_use_new_zipfile_serialization=False)
  deflated.bin, restored.bin  zip.bin rewritten by Python's zipfile: every record deflated / stored again
                            (stored at whatever offset zipfile chooses, usually not aligned)
  little_endian.bin         zip.bin with the byteorder record torch >= 2.1 writes ("little")
  zip_proto4.bin, legacy_proto4.bin   the same with pickle_protocol=4
  wrapped.bin               {"epoch": 3, "state_dict": <the state dict>} (open_clip's training checkpoints)
  nested.bin                {"model": <the state dict>} (refused)
  sharded/                  pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json
  expected/<name>.raw       each tensor's values, contiguous, in its own dtype (little-endian), and
  expected/manifest.json    {name: {"dtype": "F32"|..., "shape": [...]}}
  bad/                      inputs that must be refused: os.system / builtins.eval via __reduce__ (each would
                            create bad/PWNED if run), a complex (unknown) storage type, a tensor whose size does
                            not fit its storage, a zip without one data record, a big-endian byteorder record
  fixtures/<family>/<model>/pytorch_model.bin   with FIXTURES (the shared fixtures folder): each
                            <family>/<model>/model.safetensors of clip/ and clap/ re-saved by torch.save (zip), and
  fixtures/<family>/<model>/legacy.bin          in the legacy format
  done                      written last
"""
import collections
import json
import os
import struct
import sys
import zipfile

import torch

small = "--small" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a != "--small"]
out = args[0]
os.makedirs(os.path.join(out, "expected"), exist_ok=True)
os.makedirs(os.path.join(out, "sharded"), exist_ok=True)
os.makedirs(os.path.join(out, "bad"), exist_ok=True)
torch.manual_seed(0)

sd = collections.OrderedDict()
sd["f32"] = torch.randn(3, 4)
sd["f16"] = torch.randn(5).half()
sd["bf16"] = torch.randn(2, 3).bfloat16()
sd["position_ids"] = torch.arange(7).unsqueeze(0)
sd["transposed"] = torch.randn(4, 3).t()  # stride (1, 3): not contiguous
assert not sd["transposed"].is_contiguous()
base = torch.randn(20)
sd["shared_a"] = base[2:8].view(2, 3)  # one storage, offsets 2 and 10
sd["shared_b"] = base[10:15]
sd["param"] = torch.nn.Parameter(torch.randn(6))
if not small:
    sd["large"] = torch.randn(300, 200)
sd["empty"] = torch.zeros(0, 4)

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
manifest = {}
for name, t in sd.items():
    t = t.detach().contiguous()
    manifest[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape)}
    raw = t.view(torch.int16) if t.dtype in (torch.float16, torch.bfloat16) else t
    with open(os.path.join(out, "expected", name + ".raw"), "wb") as f:
        f.write(raw.numpy().tobytes())
with open(os.path.join(out, "expected", "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)

torch.save(sd, os.path.join(out, "zip.bin"))
torch.save(sd, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
# Protocol 4 (FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINUNICODE) instead of torch's default 2.
torch.save(sd, os.path.join(out, "zip_proto4.bin"), pickle_protocol=4)
torch.save(sd, os.path.join(out, "legacy_proto4.bin"), pickle_protocol=4, _use_new_zipfile_serialization=False)
torch.save({"epoch": 3, "state_dict": sd}, os.path.join(out, "wrapped.bin"))
torch.save({"model": sd}, os.path.join(out, "nested.bin"))


def rewrite(src, dst, method, skip=None, byteorder=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=method) as zout:
        for info in zin.infolist():
            if info.filename.endswith("/byteorder") and byteorder is not None:
                continue
            if skip and info.filename.endswith(skip):
                continue
            zout.writestr(info.filename, zin.read(info.filename), compress_type=method)
        if byteorder is not None:  # torch >= 2.1 writes this record; 1.13 does not
            prefix = zin.namelist()[0].split("/")[0]
            zout.writestr(prefix + "/byteorder", byteorder, compress_type=method)


rewrite(os.path.join(out, "zip.bin"), os.path.join(out, "deflated.bin"), zipfile.ZIP_DEFLATED)
rewrite(os.path.join(out, "zip.bin"), os.path.join(out, "restored.bin"), zipfile.ZIP_STORED)

names = list(sd)
half = len(names) // 2
index = {"metadata": {"total_size": 0}, "weight_map": {}}
for i, part in enumerate((names[:half], names[half:])):
    shard = "pytorch_model-%05d-of-00002.bin" % (i + 1)
    # Each shard gets its own copies (transformers clones shared storages per shard the same way).
    torch.save(collections.OrderedDict((n, sd[n].detach().clone()) for n in part), os.path.join(out, "sharded", shard))
    for n in part:
        index["weight_map"][n] = shard
with open(os.path.join(out, "sharded", "pytorch_model.bin.index.json"), "w") as f:
    json.dump(index, f, indent=1)

# --- inputs that must be refused ---
bad = os.path.join(out, "bad")
marker = os.path.join(bad, "PWNED")
if os.path.exists(marker):  # left by an earlier run of a broken reader: the test must see a fresh state
    os.remove(marker)


class SystemCall:
    def __reduce__(self):
        return (os.system, ("touch " + marker,))


class EvalCall:
    def __reduce__(self):
        return (eval, ("open(%r, 'w').close()" % marker,))


small = torch.randn(4)


class Oversized:  # a tensor of 100 elements over a storage of 4
    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (small.storage(), 0, (100,), (1,), False, collections.OrderedDict()))


torch.save({"w": small, "x": SystemCall()}, os.path.join(bad, "os_system.bin"))
torch.save({"w": small, "x": SystemCall()}, os.path.join(bad, "os_system_legacy.bin"), _use_new_zipfile_serialization=False)
torch.save({"w": small, "x": EvalCall()}, os.path.join(bad, "eval.bin"))
torch.save({"w": torch.randn(3, dtype=torch.complex64)}, os.path.join(bad, "complex.bin"))
torch.save({"w": Oversized()}, os.path.join(bad, "oversized.bin"))
rewrite(os.path.join(out, "zip.bin"), os.path.join(bad, "missing_record.bin"), zipfile.ZIP_STORED, skip="/data/1")
rewrite(os.path.join(out, "zip.bin"), os.path.join(out, "little_endian.bin"), zipfile.ZIP_STORED, byteorder=b"little")
rewrite(os.path.join(out, "zip.bin"), os.path.join(bad, "big_endian.bin"), zipfile.ZIP_STORED, byteorder=b"big")
assert not os.path.exists(marker)

# --- the shared fixtures, re-saved as transformers' save_pretrained(safe_serialization=False) would ---
SAFE_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):  # parsed here so that only torch is needed
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    sd = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dtype = SAFE_DTYPES[info["dtype"]]
        t = torch.frombuffer(bytearray(body[b:e]), dtype=dtype) if e > b else torch.empty(0, dtype=dtype)
        sd[name] = t.reshape(info["shape"]).clone()
    return sd


if len(args) > 1:
    for family in ("clip", "clap"):
        root = os.path.join(args[1], family)
        for model in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            src = os.path.join(root, model, "model.safetensors")
            if not os.path.isfile(src):
                continue
            dst = os.path.join(out, "fixtures", family, model)
            os.makedirs(dst, exist_ok=True)
            sd = read_safetensors(src)
            torch.save(sd, os.path.join(dst, "pytorch_model.bin"))
            torch.save(sd, os.path.join(dst, "legacy.bin"), _use_new_zipfile_serialization=False)

with open(os.path.join(out, "done"), "w") as f:
    f.write("ok\n")
