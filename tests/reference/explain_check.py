"""`zeroshot explain --json` against a small PyTorch computation of the same maps on the shared CLIP fixtures.

    explain_check.py BUILD_DIR SHARED_FIXTURES

The reference runs transformers' CLIPModel for the original stream (its hidden_states are the input of every
encoder layer) and adds CLIP Surgery's value-value path by hand (Li et al. 2023, arXiv:2304.05653): over the last
`vv_blocks` layers a second residual stream starts from the first such layer's input and adds
out_proj(softmax(v v^T * scale) v) of each (v from that layer's layer_norm1 of the original stream, no MLP); its
patch tokens go through post_layernorm and visual_projection. The maps are then cosines to the label embeddings
(normalized, ensembled over templates as the classifier does) or CLIP Surgery's feature surgery
(clip_feature_surgery: label weights softmax(2 cos(image, label)) / mean, minus the mean over labels; one label:
cosine to label minus the empty label's embedding). Pixel values are the fixtures' (the reference preprocessing).
Exit status 0 when every grid agrees within 1e-4 of its largest magnitude and every score within 1e-4.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

import torch
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPTokenizer

TOL = 1e-4

# (image, labels, templates, method, vv_blocks); vv_blocks None: every layer of the vision encoder.
CASES = [
    ("chelsea.png", ["cat", "a rocket", "a cup of coffee"], ["a photo of {}."], "surgery", 1),
    ("astronaut.png", ["person", "cat", "coffee", "horse"], ["a photo of {}.", "a drawing of {}."], "surgery", None),
    ("coffee.png", ["a cup of coffee", "coins"], ["{}"], "cosine", 1),
    ("rocket.jpg", ["a rocket"], ["a photo of {}."], "surgery", 1),
    ("wide.png", ["a rocket"], ["a photo of {}."], "cosine", None),
]


def label_embeddings(model, tok, labels, templates):
    rows = []
    for lab in labels:
        ids = tok([t.replace("{}", lab) for t in templates], padding=True, return_tensors="pt")
        e = model.get_text_features(**ids)
        e = e / e.norm(dim=-1, keepdim=True)
        e = e.mean(0)
        rows.append(e / e.norm())
    return torch.stack(rows)


def vv_tokens(model, pixel_values, vv_blocks):
    vis = model.vision_model
    out = vis(pixel_values=pixel_values[None], output_hidden_states=True)
    hs = out.hidden_states  # hs[i]: input of layer i; hs[-1]: output of the last
    layers = vis.encoder.layers
    first = len(layers) - vv_blocks
    x = hs[first][0].clone()
    for i in range(first, len(layers)):
        attn = layers[i].self_attn
        h = layers[i].layer_norm1(hs[i][0])
        n, d = h.shape
        v = attn.v_proj(h).reshape(n, attn.num_heads, attn.head_dim).transpose(0, 1)  # heads, n, hd
        a = torch.softmax((v @ v.transpose(1, 2)) * attn.scale, dim=-1)
        x = x + attn.out_proj((a @ v).transpose(0, 1).reshape(n, d))
    patches = model.visual_projection(vis.post_layernorm(x[1:]))
    image = model.visual_projection(out.pooler_output)[0]
    return image, patches


def maps(image, patches, labels, method, empty):
    f = patches / patches.norm(dim=-1, keepdim=True)
    if method == "cosine":
        return (f @ labels.T).T
    if labels.shape[0] == 1:
        return (f @ (labels - empty).T).T
    img = image / image.norm()
    w = torch.softmax(2 * (img @ labels.T), dim=-1)
    w = w / w.mean()
    feats = f[:, None, :] * labels[None, :, :] * w[None, :, None]
    return (feats - feats.mean(1, keepdim=True)).sum(-1).T


def main():
    build, fixtures = sys.argv[1], sys.argv[2]
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    failures = 0
    for name in ("clip-tiny-quickgelu", "clip-tiny-gelu-f16"):
        mdir = os.path.join(fixtures, "clip", name)
        model = CLIPModel.from_pretrained(mdir).float().eval()
        tok = CLIPTokenizer.from_pretrained(mdir)
        expected = load_file(os.path.join(mdir, "expected.safetensors"))
        layers = len(model.vision_model.encoder.layers)
        for img, labels, templates, method, vv in CASES:
            vv = vv or layers
            with torch.no_grad():
                lab = label_embeddings(model, tok, labels, templates)
                empty = label_embeddings(model, tok, [""], templates)
                image, patches = vv_tokens(model, expected["pixel_values/" + img], vv)
                ref = maps(image, patches, lab, method, empty)
                img_n = image / image.norm()
                probs = torch.softmax(model.logit_scale.exp() * (img_n @ lab.T), dim=-1)
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=os.path.join(tmp, "hf"), XDG_CACHE_HOME=tmp)
                cmd = [os.path.join(build, "zeroshot"), "explain", os.path.join(fixtures, "images", img), "-m", mdir,
                       "-q", "--no-cache", "--json", "-o", os.path.join(tmp, "out"), "--method", method,
                       "--vv-blocks", str(vv)]
                for lab_name in labels:
                    cmd += ["--label", lab_name]
                for t in templates:
                    cmd += ["-t", t]
                got = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
                pngs = all(os.path.getsize(os.path.join(tmp, "out", m["png"])) > 0 for m in got["maps"])
            g = got["grid"][0]
            for k, m in enumerate(got["maps"]):
                ours = torch.tensor(m["values"], dtype=torch.float64).reshape(-1)
                theirs = ref[k].double()
                scale = float(theirs.abs().max())
                diff = float((ours - theirs).abs().max())
                sdiff = abs(m["score"] - float(probs[k]))
                ok = (m["label"] == labels[k] and ours.numel() == g * g == theirs.numel() and diff <= TOL * scale
                      and sdiff <= TOL and pngs and abs(m["min"] - float(theirs.min())) <= TOL * scale
                      and abs(m["max"] - float(theirs.max())) <= TOL * scale)
                failures += not ok
                print("%s %-14s %-7s vv=%d %-18r max|diff| %.2e (of %.3e) score diff %.1e %s" % (
                    name, img, method, vv, labels[k], diff, scale, sdiff, "ok" if ok else "MISMATCH"))
    print("explain_check: %s" % ("ok" if not failures else "%d mismatches" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
