"""OpenCLIP-format SigLIP fixtures (issue 12, part 3), made by open_clip itself; run by make_fixtures.py.

OUT/open_clip_siglip/<name>/: a random-weight open_clip SigLIP model (CustomTextCLIP: a timm ViT trunk with the MAP
attention-pool head, no projection; open_clip's TextTransformer with no causal mask, pool_type "last", a projection
with bias, LayerNorm eps 1e-6; logit_scale and logit_bias) saved by open_clip's save_for_hf in the layout of the
timm/ViT-*-SigLIP* hub repos (open_clip_config.json, open_clip_model.safetensors, open_clip_pytorch_model.bin, the
tokenizer files). The tokenizer is the SiglipTokenizer of make_siglip.py's siglip-tiny (its spiece.model), run as
open_clip runs it: HFTokenizer(clean="canonicalize"), padded to context_length 64 without an attention mask.
siglip-test-t5-tokenizer saves the same spiece.model as the timm/ViT-*-SigLIP hub repos' tokenizers were made: by
open_clip's SigLipTokenizer (T5TokenizerFast, legacy=False, pad and eos "</s>"), so tokenizer_config.json says
T5Tokenizer and open_clip's AutoTokenizer loads a T5TokenizerFast from tokenizer.json.
  expected.safetensors   pixel_values/<image> [3,S,S] (open_clip's transform from the saved preprocess_cfg: squash,
                         bicubic, mean/std 0.5), image_embeds, text_embeds (encode_text, un-normalized),
                         logits_per_image (exp(logit_scale) * cos + logit_bias, before the sigmoid)
  expected.json          model, trunk, images, texts, input_ids (open_clip's tokenizer output, padded to 64),
                         logit_scale, logit_bias (raw), zero_shot (image, labels, templates, result: the sigmoid of each
                         label's ensembled text embedding, sorted, as open_clip's zero-shot classifier builds it)
OUT/open_clip_siglip-bad/<case>/: unknown-trunk (a timm trunk name the engine does not know), no-tokenizer.
OUT/open_clip_siglip-configs/: open_clip's own SigLIP model configs (model_configs/*SigLIP*.json, bare), and
  timm_trunks.json: for every vit_*_siglip_* trunk timm registers (and the test trunks below), the arguments its
  definition passes to VisionTransformer, as timm.create_model passes them (captured, the model not built):
  width, depth, heads, mlp (int(width * mlp_ratio)), patch, image, act ("gelu" / "gelu_tanh"), and map (class token
  off, MAP pooling, nothing else set: the architecture SiglipModel computes).

timm has no SigLIP trunk small enough for a fixture, so the trunks below are registered with timm here, under names
of the form timm uses (vit_<size>_patch<P>_siglip_<S>); src/models/open_clip_siglip.cpp knows them as test trunks.
"""
import json
import shutil
from pathlib import Path

import safetensors.torch
import torch
from PIL import Image, ImageOps

import open_clip
import timm
from open_clip.push_to_hf_hub import save_for_hf
from open_clip.tokenizer import HFTokenizer, SigLipTokenizer
from open_clip.transform import PreprocessCfg, image_transform_v2
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

import make_siglip

# name -> VisionTransformer arguments, as timm's vit_*_siglip_* definitions give them (class_token False, MAP pool).
TRUNKS = {
    "vit_test_patch16_siglip_64": dict(img_size=64, patch_size=16, embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0,
                                       class_token=False, global_pool="map"),
    "vit_testtanh_patch8_siglip_40": dict(img_size=40, patch_size=8, embed_dim=48, depth=1, num_heads=4,
                                          mlp_ratio=2.5, class_token=False, global_pool="map", act_layer="gelu_tanh"),
    # 72 px in 16 px patches: the convolution drops the last 8 pixels of each side, as in vit_so400m_patch14_siglip_384
    # (384 px in 14 px patches); so400m's mlp_ratio.
    "vit_testrem_patch16_siglip_72": dict(img_size=72, patch_size=16, embed_dim=48, depth=1, num_heads=2,
                                          mlp_ratio=3.7362, class_token=False, global_pool="map"),
}


def _register(name, args):
    def create(pretrained=False, **kwargs):
        for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(k, None)
        return VisionTransformer(**dict(args, **kwargs))
    create.__name__ = name
    register_model(create)


for _name, _args in TRUNKS.items():
    if not timm.is_model(_name):
        _register(_name, _args)

MODELS = {
    "siglip-test-gelu": "vit_test_patch16_siglip_64",
    "siglip-test-gelu-tanh": "vit_testtanh_patch8_siglip_40",
    "siglip-test-remainder": "vit_testrem_patch16_siglip_72",
    "siglip-test-t5-tokenizer": "vit_test_patch16_siglip_64",
}

# Texts for open_clip's own cleaning (ftfy, html.unescape twice, "_" -> " ", ASCII punctuation removed, lower-case,
# whitespace collapsed) before SiglipTokenizer's.
EXTRA_TEXTS = [
    "snake_case_label and kebab-case",
    "Fish &amp; Chips &amp;amp; peas &lt;3",
    "caf\u00c3\u00a9 mojibake",  # ftfy repairs it to "café"
    "\u00a0non\u2003breaking\u3000spaces\u00a0",
    "\u201ccurly quotes\u201d and \ufb01 ligature",
    "!!!",
]

ZERO_SHOT = [
    ("astronaut.png", ["cat", "dog", "astronaut", "rocket", "coffee"], ["This is a photo of {}."]),
    ("coffee.png", ["a cup of coffee", "Coffee!", "tea", "an astronaut in space"],
     ["a photo of {}", "art of the {}.", "a drawing of a {}."]),
    ("green_palette.png", ["green", "red", "blue"], ["This is a photo of {}."]),
]


def model_cfg(trunk, vocab):
    a = TRUNKS[trunk]
    return {
        "embed_dim": a["embed_dim"],
        "init_logit_bias": -10,
        "custom_text": True,
        "vision_cfg": {"image_size": a["img_size"], "timm_model_name": trunk, "timm_model_pretrained": False,
                       "timm_pool": "map", "timm_proj": "none"},
        "text_cfg": {"context_length": make_siglip.MAX_LEN, "vocab_size": vocab,
                     "hf_tokenizer_name": "siglip-tiny", "tokenizer_kwargs": {"clean": "canonicalize"},
                     "width": a["embed_dim"], "heads": 4, "layers": 2, "no_causal_mask": True, "proj_bias": True,
                     "pool_type": "last", "norm_kwargs": {"eps": 1e-6}},
    }


def perturb(model, seed):
    """Biases start at 0 and norms at 1: make every one random, so that a wrong name or slice changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("logit_scale", "logit_bias"):
                continue
            noise = torch.randn(p.shape, generator=g) * 0.1
            if "norm" in name or ".ln_" in name or name.startswith("text.ln_final"):
                p.add_(noise)
            elif name.endswith("bias"):
                p.add_(noise)
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(0.3)


def make_one(name, trunk, out, shared, cfg_dir, tok_dir, seed):
    vocab = HFTokenizer(str(tok_dir)).tokenizer.vocab_size
    cfg = model_cfg(trunk, vocab)
    (cfg_dir / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_dir / f"{name}.json")
    torch.manual_seed(seed)
    model, _, _ = open_clip.create_model_and_transforms(
        name, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5), image_interpolation="bicubic",
        image_resize_mode="squash")  # open_clip's SigLIP preprocessing (pretrained.py _slpcfg)
    perturb(model, seed)
    model.eval()
    dst = out / "open_clip_siglip" / name
    if name.endswith("t5-tokenizer"):
        saved_tokenizer = SigLipTokenizer(str(tok_dir / "spiece.model"), context_length=make_siglip.MAX_LEN)
    else:
        saved_tokenizer = HFTokenizer(str(tok_dir), context_length=make_siglip.MAX_LEN, clean="canonicalize")
    save_for_hf(model, saved_tokenizer, cfg, dst, safe_serialization="both")

    # Everything below from the saved folder: a fresh model loads the .bin strictly, the tokenizer and the
    # transform come from the saved files.
    saved = json.loads((dst / "open_clip_config.json").read_text())
    fresh = open_clip.create_model(name)
    open_clip.load_checkpoint(fresh, str(dst / "open_clip_pytorch_model.bin"), strict=True)
    model = fresh.eval()
    pp = PreprocessCfg(**{**saved["preprocess_cfg"], "size": model.visual.image_size})
    preprocess = image_transform_v2(pp, is_train=False)
    tokenizer = HFTokenizer(str(dst), context_length=make_siglip.MAX_LEN,
                            **saved["model_cfg"]["text_cfg"]["tokenizer_kwargs"])
    assert type(tokenizer.tokenizer).__name__ == ("T5TokenizerFast" if name.endswith("t5-tokenizer")
                                                  else "SiglipTokenizer"), type(tokenizer.tokenizer)

    shared_texts = json.loads((shared / "clip" / "clip-tiny-quickgelu" / "expected.json").read_text())["texts"]
    texts = shared_texts + make_siglip.EXTRA_TEXTS + EXTRA_TEXTS
    images = sorted(p.name for p in (shared / "images").iterdir() if not p.name.startswith("bad_"))
    tensors = {}
    with torch.no_grad():
        # As open_clip users load files: EXIF orientation applied, no convert first (the transform converts).
        pixels = torch.stack([preprocess(ImageOps.exif_transpose(Image.open(shared / "images" / im))) for im in images])
        for im, px in zip(images, pixels):
            tensors[f"pixel_values/{im}"] = px.contiguous()
        ids = tokenizer(texts)
        assert ids.shape[1] == make_siglip.MAX_LEN
        image_embeds = model.encode_image(pixels)
        text_embeds = model.encode_text(ids)
        img_n = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
        txt_n = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
        logits = img_n @ txt_n.T * model.logit_scale.exp() + model.logit_bias
    tensors["image_embeds"] = image_embeds.contiguous()
    tensors["text_embeds"] = text_embeds.contiguous()
    tensors["logits_per_image"] = logits.contiguous()
    safetensors.torch.save_file(tensors, dst / "expected.safetensors")

    cases = []
    with torch.no_grad():
        for image, labels, templates in ZERO_SHOT:
            # open_clip's build_zero_shot_classifier: per label, the mean of the normalized template embeddings,
            # normalized; then the SigLIP head: sigmoid(exp(logit_scale) * cos + logit_bias).
            cls = []
            for label in labels:
                e = model.encode_text(tokenizer([t.replace("{}", label) for t in templates]))
                e = (e / e.norm(dim=-1, keepdim=True)).mean(dim=0)
                cls.append(e / e.norm())
            img = image_embeds[images.index(image)]
            probs = torch.sigmoid(img / img.norm() @ torch.stack(cls).T * model.logit_scale.exp() + model.logit_bias)
            order = sorted(range(len(labels)), key=lambda i: -float(probs[i]))
            cases.append({"image": image, "labels": labels, "templates": templates,
                          "result": [{"label": labels[i], "score": float(probs[i])} for i in order]})
    expected = {
        "model": name,
        "trunk": trunk,
        "images": images,
        "texts": texts,
        "input_ids": ids.tolist(),
        "logit_scale": float(model.logit_scale),
        "logit_bias": float(model.logit_bias),
        "preprocess_cfg": saved["preprocess_cfg"],
        "zero_shot": cases,
    }
    (dst / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False))
    return dst


def make_bad(out, good):
    cfg = json.loads((good / "open_clip_config.json").read_text())
    bad = out / "open_clip_siglip-bad"
    d = bad / "unknown-trunk"
    shutil.copytree(good, d)
    cfg["model_cfg"]["vision_cfg"]["timm_model_name"] = "vit_medium_patch16_gap_256"
    (d / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    d = bad / "no-tokenizer"
    d.mkdir(parents=True)
    for f in ("open_clip_config.json", "open_clip_model.safetensors"):
        shutil.copy(good / f, d / f)


class _Captured(Exception):
    pass


def trunk_args(name):
    """The keyword arguments timm's definition of `name` passes to VisionTransformer (as open_clip creates it)."""
    captured = {}
    init = VisionTransformer.__init__

    def spy(self, *args, **kwargs):
        captured.update(kwargs)
        raise _Captured()

    VisionTransformer.__init__ = spy
    try:
        timm.create_model(name, pretrained=False, num_classes=0, global_pool="map")
    except _Captured:
        pass
    finally:
        VisionTransformer.__init__ = init
    return captured


def make_configs(out):
    dst = out / "open_clip_siglip-configs"
    dst.mkdir(parents=True)
    for f in sorted((Path(open_clip.__file__).parent / "model_configs").glob("*SigLIP*.json")):
        shutil.copy(f, dst / f.name)
    known = {"patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "class_token", "global_pool", "act_layer",
             "num_classes", "in_chans", "img_size"}
    trunks = {}
    for name in sorted(set(timm.list_models("vit_*_siglip_*")) | set(TRUNKS)):
        a = trunk_args(name)
        img = a.get("img_size", 224)
        img = img[0] if isinstance(img, (tuple, list)) else img
        assert not isinstance(img, (tuple, list)) and (a.get("img_size") is None or a["img_size"] in (img, (img, img)))
        act = a.get("act_layer") or "gelu"
        trunks[name] = {
            "width": a["embed_dim"], "depth": a["depth"], "heads": a["num_heads"],
            "mlp": int(a["embed_dim"] * a.get("mlp_ratio", 4.0)), "patch": a["patch_size"], "image": img,
            "act": act if isinstance(act, str) else act.__name__,
            "map": a.get("class_token") is False and a.get("global_pool") == "map" and set(a) <= known,
        }
    (dst / "timm_trunks.json").write_text(json.dumps(trunks, indent=1))


def make(out, shared, cfg_dir):
    tok_dir = out / "siglip" / "siglip-tiny"  # make_siglip.py's SiglipTokenizer files
    first = None
    for i, (name, trunk) in enumerate(MODELS.items()):
        dst = make_one(name, trunk, out, shared, cfg_dir, tok_dir, seed=200 + i)
        first = first or dst
    make_bad(out, first)
    make_configs(out)
