"""What make_siglip.py (SigLIP: SentencePiece tokenizer) and make_siglip2.py (SigLIP 2: Gemma tokenizer) share: the
prompt corpus their tokenizers are trained on, the tiny random SiglipModel, and the expected outputs of a model
folder (expected.safetensors / expected.json, as make_siglip.py's docstring lists them). Each script keeps what
differs: its tokenizer, seeds, image size and resampling, extra texts, zero-shot labels and the variant folders."""
import json

import safetensors.torch
import torch
from transformers import SiglipConfig, SiglipModel, pipeline
from transformers.image_utils import load_image

MAX_LEN = 64  # SiglipTokenizer's model_max_length in google/siglip-* tokenizer_config.json (SigLIP 2's too)


def corpus(repo):
    """Lower-cased prompts and class names of data/zero_shot_prompts.json: the tokenizers' training text."""
    lines = []
    prompts = json.loads((repo / "data" / "zero_shot_prompts.json").read_text())
    for ds in prompts["datasets"].values():
        classes = ds.get("classes", [])
        templates = ds.get("templates", ["a photo of a {}."])
        names = [n for c in classes for n in (c if isinstance(c, list) else [c]) if isinstance(n, str)]
        templates = [t for t in templates if isinstance(t, str)] or ["a photo of a {}."]
        for i, c in enumerate(names):
            lines.append(templates[i % len(templates)].replace("{}", c).lower())
            lines.append(c.lower())
    return lines


def tiny_model(vocab, image_size, seed, perturb_seed, logit_scale, logit_bias):
    """A random SiglipModel as small as the shared CLIP fixtures (text 48 x 2 layers, vision 48 x 2, patch 16)."""
    torch.manual_seed(seed)
    cfg = SiglipConfig(
        text_config={"vocab_size": vocab, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": MAX_LEN},
        vision_config={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 3,
                       "image_size": image_size, "patch_size": 16},
    )
    model = SiglipModel(cfg).eval()
    with torch.no_grad():
        # Random init leaves logit_scale 0, logit_bias 0, biases 0 and the layer norms at identity: perturb them all so
        # every parameter matters.
        g = torch.Generator().manual_seed(perturb_seed)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "logit" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
        model.logit_scale.fill_(logit_scale)
        model.logit_bias.fill_(logit_bias)
    return model


def split_texts(tok, shared, extra_texts):
    """The shared CLIP fixtures' texts + extra_texts, split into those the pipeline runs (at most MAX_LEN tokens) and
    the longer ones (the reference fails on them without truncation: tested truncated, as truncation=True does)."""
    shared_texts = json.loads((shared / "clip" / "clip-tiny-quickgelu" / "expected.json").read_text())["texts"]
    texts, long_texts = [], []
    for t in shared_texts + extra_texts:
        (texts if len(tok(t)["input_ids"]) <= MAX_LEN else long_texts).append(t)
    assert long_texts, "no text over 64 tokens"
    return texts, long_texts


def zero_shot(pipe, shared, cases):
    """The zero-shot-image-classification pipeline's own output for each (image, labels, template) case."""
    out = []
    for image, labels, template in cases:
        res = pipe(str(shared / "images" / image), candidate_labels=labels, hypothesis_template=template)
        out.append({"image": image, "labels": labels, "template": template,
                    "result": [{"label": r["label"], "score": r["score"]} for r in res]})
    return out


def write_expected(dst, folder, model, tok, proc, shared, texts, long_texts, cases):
    """dst/expected.safetensors and dst/expected.json of `model` (make_siglip.py's docstring says what they hold);
    returns the padded encoding of `texts`, for the variant folders."""
    enc = tok(texts, padding="max_length", return_tensors="pt")
    assert enc["input_ids"].shape[1] == MAX_LEN
    long_enc = tok(long_texts, padding="max_length", truncation=True, max_length=MAX_LEN, return_tensors="pt")

    images = sorted(p.name for p in (shared / "images").iterdir() if not p.name.startswith("bad_"))
    tensors, pixels = {}, []
    for name in images:
        # channels_last stated: transformers otherwise guesses the layout, and reads foo3x5x4indexed.png's (3, 5, 3)
        # array (3 pixels high) as channels-first (its "channel dimension is ambiguous" warning). The pipeline
        # guesses; no zero_shot case uses an image 3 pixels high or wide.
        px = proc(images=load_image(str(shared / "images" / name)), input_data_format="channels_last",
                  return_tensors="pt")["pixel_values"][0]
        tensors["pixel_values/" + name] = px.contiguous()
        pixels.append(px)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        tensors["image_embeds"] = model.get_image_features(pixel_values=torch.stack(pixels)).contiguous()
        tensors["text_embeds"] = model.get_text_features(input_ids=ids, attention_mask=mask).contiguous()
        both = model(input_ids=ids, attention_mask=mask, pixel_values=torch.stack(pixels))
        tensors["logits_per_image"] = both.logits_per_image.contiguous()
        tensors["long_text_embeds"] = model.get_text_features(
            input_ids=long_enc["input_ids"], attention_mask=long_enc["attention_mask"]).contiguous()
    safetensors.torch.save_file(tensors, dst / "expected.safetensors")

    pipe = pipeline("zero-shot-image-classification", model=model, tokenizer=tok, image_processor=proc)
    expected = {
        "model": folder,
        "images": images,
        "texts": texts,
        "input_ids": ids.tolist(),
        "lengths": mask.sum(dim=1).tolist(),
        "long_texts": long_texts,
        "long_input_ids": long_enc["input_ids"].tolist(),
        "pad_token_id": tok.pad_token_id,
        "logit_scale": float(model.logit_scale),
        "logit_bias": float(model.logit_bias),
        "zero_shot": zero_shot(pipe, shared, cases),
    }
    (dst / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False))
    return enc
