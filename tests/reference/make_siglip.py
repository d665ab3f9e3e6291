"""SigLIP reference fixtures (issue 12, part 1): a tiny random transformers SiglipModel and what transformers computes.

make(out, shared, repo) writes OUT/siglip/siglip-tiny/:
  config.json, model.safetensors      SiglipModel(config).save_pretrained (random weights, fixed seed)
  spiece.model, tokenizer_config.json, special_tokens_map.json
                                      SiglipTokenizer(...).save_pretrained over a small unigram SentencePiece model
                                      trained here with the sentencepiece package, with google/siglip-base-patch16-224's
                                      special-token layout (<pad> 0, </s> 1 = eos = pad_token, <unk> 2, no bos) and
                                      SiglipTokenizer's defaults (do_lower_case, model_max_length 64)
  preprocessor_config.json            SiglipImageProcessor (size {"height", "width"}, bicubic, mean/std 0.5)
  expected.safetensors                pixel_values/<image> [3,H,W]; image_embeds [n_images, D]; text_embeds [n_texts, D]
                                      (get_*_features, un-normalized, texts padded to 64 with the attention mask, as
                                      the pipeline runs them); logits_per_image [n_images, n_texts]
                                      (exp(logit_scale) * cos + logit_bias); long_text_embeds [n_long_texts, D]
                                      (over 64 tokens, truncation=True as SiglipProcessor users pass it)
  expected.json                       images, texts, input_ids (padded to 64 with the pad id, as the pipeline pads),
                                      lengths (unpadded), long_texts + long_input_ids (truncation=True, max_length 64),
                                      logit_scale, logit_bias (raw), zero_shot (the zero-shot-image-classification
                                      pipeline's own output: image, labels, template, result)
and OUT/siglip/siglip-tiny-nomask/: the same model with a tokenizer whose model_input_names lack "attention_mask"
(the pipeline then attends to the padding): expected.safetensors text_embeds, expected.json texts + zero_shot.
"""
import json
from pathlib import Path

import numpy as np
import safetensors.torch
import sentencepiece as spm
import torch
from PIL import Image
from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer, pipeline
from transformers.image_utils import load_image

MAX_LEN = 64  # SiglipTokenizer's model_max_length in google/siglip-* tokenizer_config.json

# Texts beyond the shared fixtures': SigLIP's punctuation removal, whitespace collapse, lower-casing, U+2581 in text.
EXTRA_TEXTS = [
    "Hello, World!!! (a test)",
    "  multiple    spaces\tand\ttabs  ",
    "UPPER lower MiXeD",
    "under_score and back\\slash and {braces}",
    "a\u2581block and ▁▁ two",
    "x",
    "a cat</s> and <unk>  dog </s>",  # special tokens spelled in the text: split out, whitespace around them stripped
    "</s>",
    "A CAT </S>",  # lower-cased first, then split: a special token again
    "ΟΔΟΣ ΣΟΦΟΣ",  # lower-cased one character at a time: no final sigma
    "İstanbul ẞ",
]


def corpus(repo):
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


def train_spm(repo, dst):
    text = dst / "corpus.txt"
    text.write_text("\n".join(corpus(repo)) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(dst / "spiece"), vocab_size=600, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        character_coverage=1.0, num_threads=1, hard_vocab_limit=False, minloglevel=2)
    text.unlink()
    (dst / "spiece.vocab").unlink()
    return dst / "spiece.model"


def make(out, shared, repo):
    make_model(out, shared, repo, "siglip-tiny", 64, nomask=True)
    # google/siglip-so400m-patch14-384's image_size is not a multiple of its patch_size (384 = 27 x 14 + 6): the
    # stride-14 convolution drops the last 6 pixel rows and columns. The same here: 72 = 4 x 16 + 8.
    make_model(out, shared, repo, "siglip-tiny-remainder", 72, nomask=False)


def make_model(out, shared, repo, folder, image_size, nomask):
    dst = out / "siglip" / folder
    dst.mkdir(parents=True)
    model_file = train_spm(repo, dst)
    tok = SiglipTokenizer(vocab_file=str(model_file), model_max_length=MAX_LEN)
    tok.save_pretrained(dst)
    tok = SiglipTokenizer.from_pretrained(dst)
    vocab = tok.vocab_size

    torch.manual_seed(12)
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
        g = torch.Generator().manual_seed(7)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "logit" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-1.7)
    model.save_pretrained(dst, safe_serialization=True)
    proc = SiglipImageProcessor(size={"height": image_size, "width": image_size}, resample=3)
    proc.save_pretrained(dst)

    shared_texts = json.loads((shared / "clip" / "clip-tiny-quickgelu" / "expected.json").read_text())["texts"]
    # Texts the pipeline would not run (over 64 tokens: the reference fails without truncation) are tested
    # separately, truncated as tokenizer(..., truncation=True) does.
    texts, long_texts = [], []
    for t in shared_texts + EXTRA_TEXTS:
        (texts if len(tok(t)["input_ids"]) <= MAX_LEN else long_texts).append(t)
    enc = tok(texts, padding="max_length", return_tensors="pt")
    assert enc["input_ids"].shape[1] == MAX_LEN
    long_enc = tok(long_texts, padding="max_length", truncation=True, max_length=MAX_LEN, return_tensors="pt")
    long_ids = long_enc["input_ids"].tolist()

    images = sorted(p.name for p in (shared / "images").iterdir() if not p.name.startswith("bad_"))
    tensors = {}
    pixels = []
    for name in images:
        # channels_last stated: transformers otherwise guesses the layout, and reads foo3x5x4indexed.png's (3, 5, 3)
        # array (3 pixels high) as channels-first (its "channel dimension is ambiguous" warning). The pipeline
        # guesses; no zero_shot case below uses an image 3 pixels high or wide.
        px = proc(images=load_image(str(shared / "images" / name)), input_data_format="channels_last",
                  return_tensors="pt")["pixel_values"][0]
        tensors["pixel_values/" + name] = px.contiguous()
        pixels.append(px)
    with torch.no_grad():
        img = model.get_image_features(pixel_values=torch.stack(pixels))
        txt = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        both = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=torch.stack(pixels))
        long_txt = model.get_text_features(input_ids=long_enc["input_ids"], attention_mask=long_enc["attention_mask"])
    tensors["long_text_embeds"] = long_txt.contiguous()
    tensors["image_embeds"] = img.contiguous()
    tensors["text_embeds"] = txt.contiguous()
    tensors["logits_per_image"] = both.logits_per_image.contiguous()
    safetensors.torch.save_file(tensors, dst / "expected.safetensors")

    pipe = pipeline("zero-shot-image-classification", model=model, tokenizer=tok, image_processor=proc)
    cases = [
        ("astronaut.png", ["cat", "dog", "astronaut", "rocket", "coffee", "motorcycle", "horse", "coins"],
         "This is a photo of {}."),
        ("coffee.png", ["a cup of coffee", "Coffee!", "tea", "an astronaut in space"], "a photo of {}"),
        ("green_palette.png", ["green", "red", "blue"], "This is a photo of {}."),
    ]
    zero_shot = []
    for image, labels, template in cases:
        res = pipe(str(shared / "images" / image), candidate_labels=labels, hypothesis_template=template)
        zero_shot.append({"image": image, "labels": labels, "template": template,
                          "result": [{"label": r["label"], "score": r["score"]} for r in res]})
    # The same model with a tokenizer whose model_input_names lack "attention_mask" (the pipeline then runs the padded
    # ids unmasked: every pad token is attended to).
    if nomask:
        make_nomask(dst.parent / "siglip-tiny-nomask", model_file, model, proc, shared, cases, texts, enc)

    expected = {
        "model": folder,
        "images": images,
        "texts": texts,
        "input_ids": enc["input_ids"].tolist(),
        "lengths": enc["attention_mask"].sum(dim=1).tolist(),
        "long_texts": long_texts,
        "long_input_ids": long_ids,
        "pad_token_id": tok.pad_token_id,
        "logit_scale": float(model.logit_scale),
        "logit_bias": float(model.logit_bias),
        "zero_shot": zero_shot,
    }
    (dst / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False))


def make_nomask(nomask, model_file, model, proc, shared, cases, texts, enc):
    nomask.mkdir()
    tok_nm = SiglipTokenizer(vocab_file=str(model_file), model_max_length=MAX_LEN, model_input_names=["input_ids"])
    tok_nm.save_pretrained(nomask)
    tok_nm = SiglipTokenizer.from_pretrained(nomask)
    assert "attention_mask" not in tok_nm(["a cat"], padding="max_length")
    model.save_pretrained(nomask, safe_serialization=True)
    proc.save_pretrained(nomask)
    pipe_nm = pipeline("zero-shot-image-classification", model=model, tokenizer=tok_nm, image_processor=proc)
    zero_shot_nm = []
    for image, labels, template in cases:
        res = pipe_nm(str(shared / "images" / image), candidate_labels=labels, hypothesis_template=template)
        zero_shot_nm.append({"image": image, "labels": labels, "template": template,
                             "result": [{"label": r["label"], "score": r["score"]} for r in res]})
    with torch.no_grad():
        txt_nm = model.get_text_features(input_ids=enc["input_ids"])
    safetensors.torch.save_file({"text_embeds": txt_nm.contiguous()}, nomask / "expected.safetensors")
    (nomask / "expected.json").write_text(json.dumps({"texts": texts, "zero_shot": zero_shot_nm}, indent=1,
                                                     ensure_ascii=False))
