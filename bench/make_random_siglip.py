"""A full-size random-weight SigLIP checkpoint for speed and memory benchmarks (issue 12's acceptance).

    /work/refvenv/bin/python bench/make_random_siglip.py OUT_DIR [--spiece SPIECE_MODEL]

Writes OUT_DIR (keep it outside the repository: ~813 MB of f32 weights) with what transformers saves for
google/siglip-base-patch16-224's geometry: SiglipConfig's defaults are that geometry (vision 768 wide, 12 layers,
patch 16, 224 x 224; text 768 wide, 12 layers, 64 positions, vocabulary 32000), so the config is left at them.
SiglipModel(config) random init (fixed seed), SiglipImageProcessor (224 x 224, bicubic, mean/std 0.5) and a
SiglipTokenizer over a SentencePiece model: the real spiece.model cannot be downloaded here, so either the one given
(e.g. the tiny fixture's, build/reference-fixtures/siglip/siglip-tiny/spiece.model) or one trained the same way as
tests/reference/make_siglip.py trains it. Its ~600 pieces use only the first ids of the 32000-row embedding table,
which costs nothing in speed: the benchmarks time the towers, not the vocabulary.
"""
import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--spiece", type=Path, help="SentencePiece model to use (default: train one as the fixtures do)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.spiece:
            model_file = Path(tmp) / "spiece.model"
            shutil.copyfile(args.spiece, model_file)
        else:
            sys.path.insert(0, str(REPO / "tests" / "reference"))
            from make_siglip import train_spm  # noqa: E402  (the fixtures' recipe, not a copy of it)
            model_file = train_spm(REPO, Path(tmp))
        SiglipTokenizer(vocab_file=str(model_file), model_max_length=64).save_pretrained(args.out)

    torch.manual_seed(12)
    cfg = SiglipConfig()  # the defaults are google/siglip-base-patch16-224's geometry
    assert (cfg.vision_config.hidden_size, cfg.vision_config.num_hidden_layers, cfg.vision_config.patch_size,
            cfg.vision_config.image_size) == (768, 12, 16, 224)
    assert (cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers, cfg.text_config.vocab_size,
            cfg.text_config.max_position_embeddings) == (768, 12, 32000, 64)
    model = SiglipModel(cfg).eval()
    with torch.no_grad():
        # The released checkpoints' values (random init leaves both at 0): exp(scale) = 10 is SigLIP's init.
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(args.out, safe_serialization=True)
    SiglipImageProcessor(size={"height": 224, "width": 224}, resample=3).save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: SigLIP B/16-224 geometry, {n / 1e6:.1f}M parameters, random weights")


if __name__ == "__main__":
    main()
