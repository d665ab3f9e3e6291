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

import safetensors.torch
import sentencepiece as spm
import torch
from transformers import SiglipImageProcessor, SiglipTokenizer, pipeline

import siglip_common
from siglip_common import MAX_LEN

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

# The zero-shot pipeline runs: (image, candidate labels, hypothesis template).
CASES = [
    ("astronaut.png", ["cat", "dog", "astronaut", "rocket", "coffee", "motorcycle", "horse", "coins"],
     "This is a photo of {}."),
    ("coffee.png", ["a cup of coffee", "Coffee!", "tea", "an astronaut in space"], "a photo of {}"),
    ("green_palette.png", ["green", "red", "blue"], "This is a photo of {}."),
]


def train_spm(repo, dst):
    text = dst / "corpus.txt"
    text.write_text("\n".join(siglip_common.corpus(repo)) + "\n")
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
    model = siglip_common.tiny_model(tok.vocab_size, image_size, seed=12, perturb_seed=7, logit_scale=2.3,
                                     logit_bias=-1.7)
    model.save_pretrained(dst, safe_serialization=True)
    proc = SiglipImageProcessor(size={"height": image_size, "width": image_size}, resample=3)
    proc.save_pretrained(dst)

    texts, long_texts = siglip_common.split_texts(tok, shared, EXTRA_TEXTS)
    enc = siglip_common.write_expected(dst, folder, model, tok, proc, shared, texts, long_texts, CASES)
    # The same model with a tokenizer whose model_input_names lack "attention_mask" (the pipeline then runs the padded
    # ids unmasked: every pad token is attended to).
    if nomask:
        make_nomask(dst.parent / "siglip-tiny-nomask", model_file, model, proc, shared, texts, enc)


def make_nomask(nomask, model_file, model, proc, shared, texts, enc):
    nomask.mkdir()
    tok_nm = SiglipTokenizer(vocab_file=str(model_file), model_max_length=MAX_LEN, model_input_names=["input_ids"])
    tok_nm.save_pretrained(nomask)
    tok_nm = SiglipTokenizer.from_pretrained(nomask)
    assert "attention_mask" not in tok_nm(["a cat"], padding="max_length")
    model.save_pretrained(nomask, safe_serialization=True)
    proc.save_pretrained(nomask)
    pipe_nm = pipeline("zero-shot-image-classification", model=model, tokenizer=tok_nm, image_processor=proc)
    zero_shot_nm = siglip_common.zero_shot(pipe_nm, shared, CASES)
    with torch.no_grad():
        txt_nm = model.get_text_features(input_ids=enc["input_ids"])
    safetensors.torch.save_file({"text_embeds": txt_nm.contiguous()}, nomask / "expected.safetensors")
    (nomask / "expected.json").write_text(json.dumps({"texts": texts, "zero_shot": zero_shot_nm}, indent=1,
                                                     ensure_ascii=False))
