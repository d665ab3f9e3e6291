"""SigLIP 2 (fixed resolution) reference fixtures (issue 12, part 2): a tiny random transformers SiglipModel with a
Gemma-style tokenizer.json, and what transformers computes on it.

google/siglip2-*-patch16-224 etc. are model_type "siglip" (SiglipModel) checkpoints whose tokenizer is Gemma's:
tokenizer.json (a `tokenizers` BPE with byte fallback, normalizer Replace(" ", "\u2581"), no pre-tokenizer), loaded by
AutoTokenizer as GemmaTokenizerFast because tokenizer_config.json names "GemmaTokenizer". GemmaTokenizerFast rebuilds
the post-processor from tokenizer_config.json's add_bos_token / add_eos_token (SigLIP 2: no bos, eos appended). The
shipped tokenizer does not lower-case (the model card asks users to lower-case labels themselves; the reference
pipeline does not), and the processor resizes with bilinear (resample 2).

make(out, shared, repo) writes OUT/siglip/siglip2-tiny/:
  config.json, model.safetensors      SiglipModel(config).save_pretrained (random weights, fixed seed)
  tokenizer.json, tokenizer_config.json, special_tokens_map.json
                                      GemmaTokenizerFast(tokenizer_object=...).save_pretrained over a small BPE trained
                                      here by the `tokenizers` library on the prompts corpus, laid out as Gemma's:
                                      <pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4, a few unused / turn tokens (special
                                      added tokens), the 256 byte tokens <0x00>..<0xFF> (vocabulary only), then the
                                      learned pieces; non-special added tokens (normalized false) as Gemma has for
                                      HTML tags and whitespace runs. SigLIP 2's tokenizer settings: add_bos_token
                                      false, add_eos_token true, model_max_length 64, padding_side right.
  preprocessor_config.json            SiglipImageProcessor (size 64 x 64, resample 2 = bilinear, mean/std 0.5)
  expected.safetensors / expected.json  as make_siglip.py's (input_ids padded to 64 with <pad> as the pipeline pads
                                      them; long texts with truncation=True; the pipeline's own zero_shot output)
and OUT/siglip/siglip2-tiny-left/: the same model and tokenizer with padding_side "left" (GemmaTokenizerFast's class
default, for a tokenizer_config.json that does not say): expected.safetensors text_embeds, expected.json texts,
input_ids, zero_shot.
"""
import json

import safetensors.torch
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import GemmaTokenizerFast, SiglipImageProcessor, pipeline

import siglip_common
from siglip_common import MAX_LEN

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[@BOS@]", "<unused0>", "<unused1>", "<start_of_turn>",
            "<end_of_turn>"]
BYTES = [f"<0x{b:02X}>" for b in range(256)]
# Gemma's non-special added tokens (normalized false): HTML tags and whitespace runs, matched before normalization.
EXTRA_ADDED = ["<table>", "<td>", "\n\n", "\t\t", "   "]

# Beyond the shared texts: byte fallback (characters the corpus never had), case kept, whitespace runs, the special
# and added tokens spelled in the text, "\u2581" typed by the user.
EXTRA_TEXTS = [
    "Hello, World!!! (a test)",
    "  multiple    spaces\tand\t\ttabs  ",
    "UPPER lower MiXeD",
    "ΟΔΟΣ ΣΟΦΟΣ ok",
    "emoji \U0001F431\U0001F436 and 猫",
    "a cat<eos> and <unk>  dog <eos>",
    "<eos>",
    "<bos>a <pad> b",
    "a <table> b<td>c\n\nd",
    "a\u2581block and \u2581\u2581 two",
    "x",
    "tab\tnew\nline",
    "\t\t\tthree tabs\tand one",
    "İstanbul ẞ café",
]


def train_tokenizer(repo):
    lines = siglip_common.corpus(repo)
    # The corpus lower-cased by siglip_common.corpus: add the cased forms too, so upper-case pieces exist.
    lines += [line.title() for line in lines[::3]]
    # Whitespace pieces, as Gemma's vocabulary has ("\t\t" is then a merge of two tab symbols).
    lines += ["a\t\tb", "\t\tindented", "col\tcol\tcol", "x\t\t\ty"] * 20
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizers.Replace(" ", "\u2581")
    # Training splits words before each "\u2581" (as SentencePiece's training does); the saved tokenizer has no
    # pre-tokenizer, like Gemma's.
    tk.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=SPECIALS + BYTES, limit_alphabet=60,
                                  show_progress=False)
    tk.train_from_iterator(lines, trainer)
    tk.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    # The byte tokens are vocabulary entries in Gemma's file, not added tokens: drop them from added_tokens.
    j = json.loads(tk.to_str())
    j["pre_tokenizer"] = None
    j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] not in BYTES]
    tk = Tokenizer.from_str(json.dumps(j))
    tk.add_tokens([AddedToken(t, normalized=False, special=False) for t in EXTRA_ADDED])
    return tk


def tokenizer(tk, padding_side):
    return GemmaTokenizerFast(tokenizer_object=tk, add_bos_token=False, add_eos_token=True, model_max_length=MAX_LEN,
                              padding_side=padding_side, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                              unk_token="<unk>", mask_token="<mask>")


# The zero-shot pipeline runs: (image, candidate labels, hypothesis template); labels as users type them (SigLIP 2's
# tokenizer keeps case).
CASES = [
    ("astronaut.png", ["cat", "dog", "astronaut", "rocket", "coffee", "motorcycle", "horse", "coins"],
     "This is a photo of {}."),
    ("coffee.png", ["a cup of coffee", "Coffee!", "tea", "an Astronaut in space"], "a photo of {}"),
    ("green_palette.png", ["green", "red", "blue"], "This is a photo of {}."),
]


def make(out, shared, repo):
    dst = out / "siglip" / "siglip2-tiny"
    dst.mkdir(parents=True)
    tk = train_tokenizer(repo)
    tokenizer(tk, "right").save_pretrained(dst)
    tok = GemmaTokenizerFast.from_pretrained(dst)
    assert not tok.add_bos_token and tok.add_eos_token and tok.padding_side == "right"

    model = siglip_common.tiny_model(len(tok), 64, seed=22, perturb_seed=9, logit_scale=2.1, logit_bias=-1.3)
    model.save_pretrained(dst, safe_serialization=True)
    proc = SiglipImageProcessor(size={"height": 64, "width": 64}, resample=2)
    proc.save_pretrained(dst)

    texts, long_texts = siglip_common.split_texts(tok, shared, EXTRA_TEXTS)
    siglip_common.write_expected(dst, "siglip2-tiny", model, tok, proc, shared, texts, long_texts, CASES)

    # padding_side left: the pad tokens come first, the pooled last position is the text's own <eos>.
    left = dst.parent / "siglip2-tiny-left"
    left.mkdir()
    tokenizer(tk, "left").save_pretrained(left)
    tok_l = GemmaTokenizerFast.from_pretrained(left)
    assert tok_l.padding_side == "left"
    model.save_pretrained(left, safe_serialization=True)
    proc.save_pretrained(left)
    enc_l = tok_l(texts, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        txt_l = model.get_text_features(**enc_l)
    safetensors.torch.save_file({"text_embeds": txt_l.contiguous()}, left / "expected.safetensors")
    pipe_l = pipeline("zero-shot-image-classification", model=model, tokenizer=tok_l, image_processor=proc)
    zero_shot_l = siglip_common.zero_shot(pipe_l, shared, CASES)
    (left / "expected.json").write_text(json.dumps(
        {"texts": texts, "input_ids": enc_l["input_ids"].tolist(), "zero_shot": zero_shot_l}, indent=1,
        ensure_ascii=False))
