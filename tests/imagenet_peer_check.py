#!/usr/bin/python3
"""End to end over ../shared/datasets/imagenet-samples, spot-checked against the PyTorch peer.

1. `zeroshot classify --format json` runs over all 1,000 photos with a fixture model: 1,000 results, no errors.
2. For a spread sample of photos, the engine's pixel_values, image embeddings and label prompts' token ids are
   fed to ../shared/tools/clip_torch.py's model: its embeddings must match ours (1e-4 x max abs) and its
   zero-shot scores must match both ours and the CLI's JSON output (1e-4).

usage: imagenet_peer_check.py BUILD_DIR SHARED_DIR MODEL_NAME
"""
import json, os, subprocess, sys, tempfile

build, shared, model_name = sys.argv[1:4]
model_dir = f"{shared}/fixtures/clip/{model_name}"
photos = f"{shared}/datasets/imagenet-samples"
sys.path.insert(0, f"{shared}/tools")
try:
    import torch  # noqa: F401
    import clip_torch
except ImportError as e:
    print(f"SKIP: the PyTorch peer cannot run here ({e}); install python3-torch python3-numpy")
    sys.exit(77)

labels = ["tench", "goldfish", "great white shark", "cock", "hen", "ostrich", "tree frog", "a red car"]
env = dict(os.environ, HF_HUB_OFFLINE="1")
out = subprocess.run([f"{build}/zeroshot", "classify", "-m", model_dir, "-l", ",".join(labels), "-f", "json", "-q", photos],
                     capture_output=True, text=True, env=env)
lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
assert out.returncode == 0, out.stderr
assert len(lines) == 1000, f"{len(lines)} results"
assert all("result" in l and len(l["result"]) == len(labels) for l in lines)
cli = {l["image"]: {r["label"]: r["score"] for r in l["result"]} for l in lines}

sample = sorted(cli)[::50]
with tempfile.TemporaryDirectory() as tmp:
    dump = f"{tmp}/dump.safetensors"
    subprocess.run([f"{build}/tests/peer_dump", model_dir, dump, ",".join(labels)] + sample, check=True)
    ours = clip_torch.read_safetensors(dump)
peer = clip_torch.Clip(model_dir)
img = peer.image_features(ours["pixel_values"])
err = float((img - ours["image_embeds"]).abs().max() / img.abs().max())
assert err <= 1e-4, f"image embeddings differ from the peer: rel {err}"
ids = [ours[f"ids/{k}"].tolist() for k in range(len(labels))]
txt = peer.text_features(ids)
txt = txt / txt.norm(dim=-1, keepdim=True)
scale = float(peer.w["logit_scale"].exp())
probs = (scale * (img / img.norm(dim=-1, keepdim=True)) @ txt.T).softmax(-1)
d_ours = float((probs - ours["scores"]).abs().max())
d_cli = max(abs(float(probs[i, k]) - cli[p][labels[k]]) for i, p in enumerate(sample) for k in range(len(labels)))
assert d_ours <= 1e-4 and d_cli <= 1e-4, f"scores differ from the peer: engine {d_ours}, CLI {d_cli}"
print(json.dumps({"photos": len(lines), "sampled": len(sample), "image_rel_err": err,
                  "max_score_diff_engine": d_ours, "max_score_diff_cli": d_cli}))
