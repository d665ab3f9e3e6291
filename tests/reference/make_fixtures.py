#!/usr/bin/env python3
"""Reference fixtures written by the reference libraries themselves (issue 11, part 4).

    make_fixtures.py OUT_DIR [SHARED_FIXTURES]     (SHARED_FIXTURES defaults to $ZEROSHOT_FIXTURES)

Run by CTest as a fixture-setup test into <build>/reference-fixtures (nothing large is committed). Everything is
deterministic (fixed seeds); the checkpoints are as small as the shared fixtures, so this takes seconds.

OUT_DIR/
  bin/<model>/                     the shared HF fixture's files (not model.safetensors) + pytorch_model.bin,
                                   written by transformers' save_pretrained(safe_serialization=False), F16 kept F16
  bin-sharded/clip-tiny-quickgelu/ the same, in 3+ shards (pytorch_model.bin.index.json)
  bin-legacy/clip-tiny-quickgelu/  the same, torch.save(state_dict, _use_new_zipfile_serialization=False)
  open_clip/<name>/                an OpenCLIP checkpoint written by open_clip's save_for_hf (open_clip_config.json,
                                   open_clip_model.safetensors, open_clip_pytorch_model.bin, tokenizer files) and the
                                   outputs of open_clip's own preprocessing, tokenizer and forward pass:
      expected.safetensors         pixel_values/<image> [3,S,S], image_embeds [n_images, embed_dim],
                                   text_embeds [n_texts, embed_dim] (un-normalized), logits_per_image
      expected.json                model, images, texts, input_ids (bos..eos, no padding, truncated to
                                   context_length), context_length, ftfy_sensitive_texts, logit_scale,
                                   preprocess_cfg (the effective one), zero_shot cases (as the shared fixtures')
  open_clip-bad/<case>/            inputs a loader must refuse (see BAD_CASES below)
  open_clip_siglip*/               OpenCLIP-format SigLIP models and their expected outputs (make_open_clip_siglip.py)
The expected outputs of bin*/ are the shared fixtures' own: the weights are the same.
"""
import copy
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# One thread everywhere (torch's pool and the BLAS underneath), set before torch loads: the same run gives the
# same bytes, whatever the machine's core count or the caller's environment.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np
import torch
from PIL import Image, ImageOps

import open_clip
import safetensors.torch
from open_clip.push_to_hf_hub import save_for_hf
from open_clip.tokenizer import HFTokenizer
from transformers import ClapModel, CLIPModel

import make_siglip  # tests/reference/make_siglip.py (the script's folder is on sys.path)
import make_siglip2  # tests/reference/make_siglip2.py
import make_open_clip_siglip  # tests/reference/make_open_clip_siglip.py

CLIP_MODELS = ["clip-tiny-quickgelu", "clip-tiny-gelu-f16"]
CLAP_MODELS = ["clap-tiny-unfused", "clap-tiny-fused"]

# Two open_clip models made from custom configs, between them covering what the HF-derived ones do not:
# GELU, mlp_ratio != 4 (int(width * ratio) truncates), head_width != 64, context_length != 77, image_size != 224,
# bilinear interpolation, resize_mode longest and squash, non-default mean/std.
NATIVE = {
    "native-gelu-longest": {
        "model_cfg": {
            "embed_dim": 24,
            "quick_gelu": False,
            "vision_cfg": {"image_size": 64, "layers": 2, "width": 48, "head_width": 16, "mlp_ratio": 2.5,
                           "patch_size": 16},
            "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 60, "heads": 5, "layers": 2,
                         "mlp_ratio": 2.05},  # int(60 * 2.05) = int(122.99999999999999) = 122
        },
        "preprocess": {"image_mean": (0.5, 0.45, 0.4), "image_std": (0.2, 0.25, 0.3),
                       "image_interpolation": "bilinear", "image_resize_mode": "longest"},
    },
    "native-quickgelu-squash": {
        "model_cfg": {
            "embed_dim": 32,
            "quick_gelu": True,
            "vision_cfg": {"image_size": 80, "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 3.25,
                           "patch_size": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 48, "heads": 3, "layers": 1,
                         "mlp_ratio": 2.0},
        },
        "preprocess": {"image_mean": (0.485, 0.456, 0.406), "image_std": (0.229, 0.224, 0.225),
                       "image_interpolation": "bicubic", "image_resize_mode": "squash"},
    },
}

ZERO_SHOT_IMAGES = ["astronaut.png", "green_palette.png", "cmyk.jpg", "wide.png"]
ZERO_SHOT_TEMPLATES = [["This is a photo of {}."], ["a photo of a {}.", "art of the {}.", "a drawing of a {}."]]


def hf_config_to_open_clip(cfg):
    """The open_clip model_cfg of a Hugging Face CLIPConfig (ViT towers only)."""
    t, v = cfg["text_config"], cfg["vision_config"]
    acts = {t["hidden_act"], v["hidden_act"]}
    assert acts <= {"quick_gelu", "gelu"} and len(acts) == 1, acts
    return {
        "embed_dim": cfg["projection_dim"],
        "quick_gelu": acts == {"quick_gelu"},
        "vision_cfg": {
            "image_size": v["image_size"], "layers": v["num_hidden_layers"], "width": v["hidden_size"],
            "head_width": v["hidden_size"] // v["num_attention_heads"],
            "mlp_ratio": v["intermediate_size"] / v["hidden_size"], "patch_size": v["patch_size"],
        },
        "text_cfg": {
            "context_length": t["max_position_embeddings"], "vocab_size": t["vocab_size"], "width": t["hidden_size"],
            "heads": t["num_attention_heads"], "layers": t["num_hidden_layers"],
            "mlp_ratio": t["intermediate_size"] / t["hidden_size"],
        },
    }


def hf_state_to_open_clip(sd, cfg):
    """Hugging Face CLIPModel tensor names -> open_clip CLIP names (q/k/v stacked, projections transposed)."""
    out = {}
    pairs = [
        ("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
        ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
        ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
        ("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"),
        ("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"),
        ("vision_model.post_layernorm.weight", "visual.ln_post.weight"),
        ("vision_model.post_layernorm.bias", "visual.ln_post.bias"),
        ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
        ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
        ("text_model.final_layer_norm.weight", "ln_final.weight"),
        ("text_model.final_layer_norm.bias", "ln_final.bias"),
        ("logit_scale", "logit_scale"),
    ]
    for hf, oc in pairs:
        out[oc] = sd[hf]
    out["visual.proj"] = sd["visual_projection.weight"].t().contiguous()
    out["text_projection"] = sd["text_projection.weight"].t().contiguous()
    for hf_tower, oc_tower, n in [("vision_model", "visual.transformer", cfg["vision_config"]["num_hidden_layers"]),
                                  ("text_model", "transformer", cfg["text_config"]["num_hidden_layers"])]:
        for i in range(n):
            h, o = f"{hf_tower}.encoder.layers.{i}.", f"{oc_tower}.resblocks.{i}."
            for kind in ["weight", "bias"]:
                out[o + "attn.in_proj_" + kind] = torch.cat(
                    [sd[h + f"self_attn.{p}_proj.{kind}"] for p in "qkv"], dim=0)
                for a, b in [("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                             ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]:
                    out[o + b + "." + kind] = sd[h + a + "." + kind]
    return out


def copy_shared_files(src, dst):
    # Not the weights, and not the engine's own side files (zeroshot-int8.safetensors) a test run may leave there.
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name != "model.safetensors" and not f.name.startswith("zeroshot-"):
            shutil.copy(f, dst / f.name)


def make_bin(shared, out):
    for name in CLIP_MODELS + CLAP_MODELS:
        src = shared / ("clip" if name.startswith("clip") else "clap") / name
        cls = CLIPModel if name.startswith("clip") else ClapModel
        model = cls.from_pretrained(src, torch_dtype="auto")  # "auto": the F16 checkpoints stay F16
        dst = out / "bin" / name
        model.save_pretrained(dst, safe_serialization=False)
        copy_shared_files(src, dst)  # the shared config.json and tokenizer files, byte for byte
        if name == "clip-tiny-quickgelu":
            sharded = out / "bin-sharded" / name
            total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
            model.save_pretrained(sharded, safe_serialization=False, max_shard_size=max(total // 16, 1))
            copy_shared_files(src, sharded)
            shards = [f for f in sharded.iterdir() if f.name.startswith("pytorch_model-")]
            assert len(shards) >= 3, shards
            legacy = out / "bin-legacy" / name
            legacy.mkdir(parents=True)
            torch.save(model.state_dict(), legacy / "pytorch_model.bin", _use_new_zipfile_serialization=False)
            copy_shared_files(src, legacy)


def perturb(model, seed):
    """open_clip initializes biases to 0 and norms to 1: make every parameter random so that a mistake in any
    name, slice or transpose changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                continue
            noise = torch.randn(p.shape, generator=g) * 0.05
            if name.endswith(".weight") and ("ln" in name.split(".")[-2]):
                p.copy_(1.0 + noise * 2)
            elif name.endswith("bias"):
                p.copy_(noise)


def images_of(shared):
    return sorted(p.name for p in (shared / "images").iterdir() if not p.name.startswith("bad_"))


def open_image(path):
    # As open_clip users load files: EXIF orientation applied; no convert("RGB") (the transform converts after
    # resizing, so palette / CMYK / LA images go through Pillow's rules for their own mode).
    return ImageOps.exif_transpose(Image.open(path))


def zero_shot(model, tokenizer, image_emb, labels, templates):
    with torch.no_grad():
        cls = []
        for label in labels:
            e = model.encode_text(tokenizer([t.replace("{}", label) for t in templates]))
            e = e / e.norm(dim=-1, keepdim=True)
            e = e.mean(dim=0)
            cls.append(e / e.norm())
        cls = torch.stack(cls)
        img = image_emb / image_emb.norm()
        probs = (model.logit_scale.exp() * img @ cls.T).softmax(dim=-1)
    order = sorted(range(len(labels)), key=lambda i: -float(probs[i]))
    return [{"label": labels[i], "score": float(probs[i])} for i in order]


def make_open_clip(name, model_cfg, pp_kwargs, shared, out, cfg_dir, state_dict=None, save_f16=False, seed=0,
                   hf_dir=None):
    """Builds the model through open_clip's public API, saves it with save_for_hf, reloads the saved weights
    with open_clip's own load_checkpoint and writes what open_clip computes with them."""
    with open(cfg_dir / f"{name}.json", "w") as f:
        json.dump(model_cfg, f)
    open_clip.add_model_config(cfg_dir / f"{name}.json")
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name, **pp_kwargs)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    else:
        perturb(model, seed)
    model.eval()
    pp = dict(model.visual.preprocess_cfg)  # the effective preprocessing (size from the vision tower)
    dst = out / "open_clip" / name
    # save_for_hf wants a Hugging Face tokenizer to save beside the weights; the shared fixtures carry CLIP's.
    hf_tok = HFTokenizer(str(shared / "clip" / "clip-tiny-gelu-f16"))
    saved = copy.deepcopy(model)
    if save_f16:
        saved.half()  # the F16 values the model was loaded from, exactly
    save_for_hf(saved, hf_tok, model_cfg, dst, safe_serialization="both")
    del saved

    # Round trip: a fresh model of the same config loads the saved .bin strictly and matches.
    fresh = open_clip.create_model(name)
    open_clip.load_checkpoint(fresh, str(dst / "open_clip_pytorch_model.bin"), strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k].float(), v.float()), k
    model = fresh.eval()

    tokenizer = open_clip.get_tokenizer(name)
    hf_expected = json.loads((shared / "clip" / "clip-tiny-quickgelu" / "expected.json").read_text())
    texts = hf_expected["texts"]
    images = images_of(shared)
    tensors = {}
    with torch.no_grad():
        pixels = torch.stack([preprocess(open_image(shared / "images" / im)) for im in images])
        for im, px in zip(images, pixels):
            tensors[f"pixel_values/{im}"] = px.contiguous()
        image_embeds = model.encode_image(pixels)
        ids = tokenizer(texts)
        text_embeds = model.encode_text(ids)
        img_n = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
        txt_n = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * img_n @ txt_n.T
    tensors["image_embeds"] = image_embeds.contiguous()
    tensors["text_embeds"] = text_embeds.contiguous()
    tensors["logits_per_image"] = logits.contiguous()
    if hf_dir is not None:
        # The conversion is right only if open_clip reproduces the Hugging Face model's own outputs.
        hf = safetensors.torch.load_file(hf_dir / "expected.safetensors")
        hf_json = json.loads((hf_dir / "expected.json").read_text())
        hf_px = torch.stack([hf[f"pixel_values/{im}"] for im in hf_json["images"]])
        # The Hugging Face ids, not open_clip's: the two tokenizers differ on a text that spells a special token
        # ("<|endoftext|>" is one to OpenAI's and HF's; open_clip's special tokens are "<end_of_text>").
        hf_ids = torch.zeros(len(hf_json["input_ids"]), model.context_length, dtype=torch.long)
        for i, row in enumerate(hf_json["input_ids"]):
            hf_ids[i, :len(row)] = torch.tensor(row)
        with torch.no_grad():
            pairs = [(model.encode_image(hf_px), hf["image_embeds"]), (model.encode_text(hf_ids), hf["text_embeds"])]
        for got, want in pairs:
            assert (got - want).abs().max() <= 1e-4 * want.abs().max(), name
    safetensors.torch.save_file(tensors, dst / "expected.safetensors")

    input_ids = []
    for row in ids.tolist():
        end = int(np.argmax(row))  # the eot token: open_clip pools there, and nothing after it is input
        input_ids.append(row[:end + 1])
    labels = hf_expected["zero_shot"][0]["labels"]
    cases = []
    for im in ZERO_SHOT_IMAGES:
        for templates in ZERO_SHOT_TEMPLATES:
            emb = image_embeds[images.index(im)]
            cases.append({"image": im, "labels": labels, "templates": templates,
                          "result": zero_shot(model, tokenizer, emb, labels, templates)})
    expected = {
        "model": name,
        "images": images,
        "texts": texts,
        "input_ids": input_ids,
        "context_length": model.context_length,
        "ftfy_sensitive_texts": hf_expected.get("ftfy_sensitive_texts", []),
        "logit_scale": float(model.logit_scale),
        "preprocess_cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()},
        "zero_shot": cases,
    }
    (dst / "expected.json").write_text(json.dumps(expected, indent=1))
    return model


# Inputs the OpenCLIP loader must refuse: (case, how to make its open_clip_config.json, how to change the weights).
def make_bad(out, good):
    src = out / "open_clip" / good
    cfg = json.loads((src / "open_clip_config.json").read_text())
    weights = safetensors.torch.load_file(src / "open_clip_model.safetensors")

    def write(case, config=None, text=None, tensors=None):
        d = out / "open_clip-bad" / case
        d.mkdir(parents=True)
        (d / "open_clip_config.json").write_text(text if text is not None else json.dumps(config, indent=2))
        safetensors.torch.save_file(tensors if tensors is not None else weights, d / "open_clip_model.safetensors")

    write("not-json", text='{"model_cfg": {"embed_dim": 24, ')
    c = copy.deepcopy(cfg)
    c["model_cfg"]["vision_cfg"] = {"timm_model_name": "fastvit_mci1", "timm_model_pretrained": False,
                                    "timm_pool": "avg", "timm_proj": None, "image_size": 256}
    write("timm-tower", c)
    c = copy.deepcopy(cfg)
    c["model_cfg"]["vision_cfg"]["layers"] = [3, 4, 6, 3]
    write("resnet-tower", c)
    c = copy.deepcopy(cfg)
    c["model_cfg"]["multimodal_cfg"] = {"context_length": 76, "width": 40, "heads": 5, "layers": 2}
    write("coca", c)
    c = copy.deepcopy(cfg)
    c["model_cfg"]["text_cfg"] = {"hf_model_name": "xlm-roberta-base", "hf_tokenizer_name": "xlm-roberta-base",
                                  "hf_proj_type": "mlp", "hf_pooler_type": "mean_pooler"}
    write("hf-text-tower", c)
    extra = dict(weights)
    extra["visual.extra_head.weight"] = torch.zeros(4, 4)
    write("unexpected-tensor", cfg, tensors=extra)
    missing = {k: v for k, v in weights.items() if k != "visual.ln_post.weight"}
    write("missing-tensor", cfg, tensors=missing)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    shared = Path(sys.argv[2] if len(sys.argv) == 3 else os.environ["ZEROSHOT_FIXTURES"])
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # Written next to OUT and renamed at the end, so a failed run never leaves a half-made folder behind.
    tmp = Path(str(out) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    make_bin(shared, tmp)
    with tempfile.TemporaryDirectory() as cfg_dir:
        cfg_dir = Path(cfg_dir)
        for i, name in enumerate(CLIP_MODELS):
            src = shared / "clip" / name
            hf_cfg = json.loads((src / "config.json").read_text())
            sd = {k: v.float() for k, v in safetensors.torch.load_file(src / "model.safetensors").items()
                  if k != "text_model.embeddings.position_ids" and k != "vision_model.embeddings.position_ids"}
            oc_name = "from-hf-" + name[len("clip-tiny-"):]
            make_open_clip(oc_name, hf_config_to_open_clip(hf_cfg), {}, shared, tmp, cfg_dir,
                           state_dict=hf_state_to_open_clip(sd, hf_cfg), save_f16="f16" in name, seed=i, hf_dir=src)
        for i, (name, spec) in enumerate(NATIVE.items()):
            make_open_clip(name, spec["model_cfg"], spec["preprocess"], shared, tmp, cfg_dir, seed=100 + i)
            if i == 0:
                make_bad(tmp, name)
                # The preprocessing options travel in the config: save_for_hf wrote them from the model.
                pp = json.loads((tmp / "open_clip" / name / "open_clip_config.json").read_text())["preprocess_cfg"]
                assert pp["interpolation"] == "bilinear" and pp["resize_mode"] == "longest", pp
    make_siglip.make(tmp, shared, Path(__file__).resolve().parents[2])  # siglip/ (make_siglip.py says what)
    make_siglip2.make(tmp, shared, Path(__file__).resolve().parents[2])  # siglip/siglip2-tiny* (make_siglip2.py)
    with tempfile.TemporaryDirectory() as cfg_dir:  # open_clip_siglip*/ (make_open_clip_siglip.py), after siglip/
        make_open_clip_siglip.make(tmp, shared, Path(cfg_dir))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"reference fixtures: {out}")


if __name__ == "__main__":
    main()
