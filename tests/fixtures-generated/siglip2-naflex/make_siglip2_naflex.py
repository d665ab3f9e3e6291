"""SigLIP 2 NaFlex reference fixture (issue 12, part 2): a tiny random transformers Siglip2Model (model_type "siglip2")
and what transformers computes on it. Unlike tests/reference/, this fixture is COMMITTED: it needs transformers >= 4.50
(Siglip2Model) and torch 2, which the CI reference environment (transformers 4.44) does not have.

Run with such an environment (e.g. a venv with torch==2.5.1, transformers>=4.50,<4.52, safetensors, numpy,
sentencepiece and pillow==9.4.0, Debian bookworm's Pillow that the rest of the reference fixtures use: newer Pillow
orders its two resampling passes differently for some sizes, e.g. tall.webp, which moves a pixel by one level) from
the repository root:
  python tests/fixtures-generated/siglip2-naflex/make_siglip2_naflex.py /work/shared/fixtures

It rewrites model/ and the expected files beside this script (one thread, fixed seeds: reruns are identical):
  model/config.json, model/model.safetensors   Siglip2Model(config).save_pretrained: vision hidden 32, 2 layers,
                                      patch 16, num_patches 64 (an 8 x 8 positional grid); text hidden 32, 2 layers;
                                      every bias, norm and logit_scale / logit_bias perturbed
  model/tokenizer.json, tokenizer_config.json, special_tokens_map.json
                                      the Gemma-layout tokenizer of tests/reference/make_siglip2.py (trained the same
                                      way, SigLIP 2's settings: eos appended, padded right to 64)
  model/preprocessor_config.json      Siglip2ImageProcessor (patch_size 16, max_num_patches 64, bilinear, mean/std 0.5)
  images/                             synthetic images beside the shared ones: dot.png (1 x 1, smaller than a patch),
                                      streak.png (900 x 2: wider than max_num_patches patches allow), pillar.png (its
                                      transpose: a grid one patch wide, where torch's interpolation repeats one row)
  expected.safetensors                pixel_values/<image> [real patches, 768] (the processor's rows whose
                                      pixel_attention_mask is 1; the padding rows are zeros, checked here) for the
                                      images in `pixel_images`; image_embeds [n_images, 32] (get_image_features with the
                                      mask and spatial shapes, all images in one padded batch); text_embeds
                                      [n_texts, 32]; logits_per_image [n_images, n_texts]
  positions.safetensors               grid [8, 8, 4] (random) and resized/<h>x<w> [h * w, 4]: transformers'
                                      Siglip2VisionEmbeddings.resize_positional_embeddings of it
  expected.json                       target_sizes ([height, width, patch_size, max_num_patches, target height,
                                      target width] by get_image_size_for_max_num_patches), position_grids,
                                      images (shared ones by name, ours as images/<name>), pixel_images,
                                      spatial_shapes and num_patches (the mask's sum) per image, max_num_patches,
                                      texts, input_ids (padded to 64), logit_scale, logit_bias (raw), zero_shot (the
                                      zero-shot-image-classification pipeline's own output)
"""
import json
import sys
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from PIL import Image
from transformers import GemmaTokenizerFast, Siglip2Config, Siglip2ImageProcessor, Siglip2Model, pipeline
from transformers.image_utils import load_image
from transformers.models.siglip2.image_processing_siglip2 import get_image_size_for_max_num_patches
from transformers.models.siglip2.modeling_siglip2 import Siglip2VisionEmbeddings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests" / "reference"))
import make_siglip2  # noqa: E402  (the Gemma-layout tokenizer)

MAX_PATCHES = 64
PIXEL_IMAGES = ["wide.png", "tall.webp", "foo3x5x4indexed.png", "exif_orientation6.jpg", "images/dot.png",
                "images/streak.png"]
# (height, width) for the patch-budget resize, beyond the images': extremes, sizes under one patch, exact fits.
SIZES = [(1, 1), (1, 10000), (10000, 1), (3, 5), (15, 15), (16, 16), (17, 16), (224, 224), (480, 640), (3000, 4000),
         (60, 741), (427, 60), (1, 2), (999, 37), (512, 513), (7, 1000), (256, 4096),
         (100000000, 1)]
BUDGETS = [(16, 64), (16, 256), (16, 1024), (14, 128), (16, 1)]
# Positional grids resized by transformers' own resize_positional_embeddings (a random 8 x 8 x 4 grid).
GRIDS = [(1, 1), (1, 64), (64, 1), (3, 21), (8, 8), (16, 16), (5, 11), (2, 25), (7, 7), (32, 3)]
TEXTS = ["a photo of a cat", "This is a photo of astronaut.", "UPPER lower MiXeD", "emoji \U0001F431 and 猫", "x"]


def main(shared):
    torch.set_num_threads(1)
    model_dir = HERE / "model"
    model_dir.mkdir(exist_ok=True)
    tk = make_siglip2.train_tokenizer(REPO)
    make_siglip2.tokenizer(tk, "right").save_pretrained(model_dir)
    tok = GemmaTokenizerFast.from_pretrained(model_dir)

    torch.manual_seed(12)
    cfg = Siglip2Config(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": make_siglip2.MAX_LEN},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "num_patches": 64, "patch_size": 16},
    )
    model = Siglip2Model(cfg).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "logit" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            if "position_embedding" in name and "vision" in name:
                p.add_(torch.randn(p.shape, generator=g))  # a grid with structure to interpolate
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-1.1)
    model.save_pretrained(model_dir, safe_serialization=True)
    proc = Siglip2ImageProcessor(patch_size=16, max_num_patches=MAX_PATCHES)
    proc.save_pretrained(model_dir)

    img_dir = HERE / "images"
    img_dir.mkdir(exist_ok=True)
    Image.new("RGB", (1, 1), (200, 30, 90)).save(img_dir / "dot.png")
    ramp = np.zeros((2, 900, 3), dtype=np.uint8)
    ramp[..., 0] = (np.arange(900) * 255 // 899)[None, :]
    ramp[1, :, 1] = 255
    Image.fromarray(ramp).save(img_dir / "streak.png")
    Image.fromarray(ramp.transpose(1, 0, 2).copy()).save(img_dir / "pillar.png")

    shared_images = sorted(p.name for p in (shared / "images").iterdir() if not p.name.startswith("bad_"))
    images = shared_images + ["images/dot.png", "images/streak.png", "images/pillar.png"]

    def path(name):
        return str(HERE / name) if name.startswith("images/") else str(shared / "images" / name)

    enc_img = proc(images=[load_image(path(n)) for n in images], return_tensors="pt")
    mask, shapes = enc_img["pixel_attention_mask"], enc_img["spatial_shapes"]
    tensors = {}
    for i, name in enumerate(images):
        n = int(mask[i].sum())
        assert int(shapes[i][0] * shapes[i][1]) == n and bool(mask[i][:n].all())
        assert not enc_img["pixel_values"][i][n:].any(), "padding rows are not zero"
        if name in PIXEL_IMAGES:
            tensors["pixel_values/" + name] = enc_img["pixel_values"][i][:n].contiguous()
    enc = tok(TEXTS, padding="max_length", max_length=make_siglip2.MAX_LEN, truncation=True, return_tensors="pt")
    with torch.no_grad():
        tensors["image_embeds"] = model.get_image_features(**enc_img).contiguous()
        tensors["text_embeds"] = model.get_text_features(**enc).contiguous()
        tensors["logits_per_image"] = model(**enc, **enc_img).logits_per_image.contiguous()
    safetensors.torch.save_file(tensors, HERE / "expected.safetensors")

    pipe = pipeline("zero-shot-image-classification", model=model, tokenizer=tok, image_processor=proc)
    zero_shot = []
    for image, labels, template in [
        ("astronaut.png", ["cat", "dog", "astronaut", "rocket", "coffee"], "This is a photo of {}."),
        ("wide.png", ["a wide banner", "a tall tower", "green"], "a photo of {}"),
        # 14 x 25 pixels: narrower than one patch. (A lone 1 x 1 or 3-pixel-high image cannot go through the pipeline:
        # transformers' infer_channel_dimension_format takes its height for a channel axis. In the batch above the
        # first image fixes the layout, so dot.png's embedding is the processor's documented upscale to one patch.)
        ("no_time_for_that_tiny.gif", ["red", "pink", "blue"], "This is a photo of {}."),
    ]:
        res = pipe(path(image), candidate_labels=labels, hypothesis_template=template)
        zero_shot.append({"image": image, "labels": labels, "template": template,
                          "result": [{"label": r["label"], "score": r["score"]} for r in res]})
    target_sizes = [[h, w, p, n, *get_image_size_for_max_num_patches(h, w, p, n)] for h, w in SIZES for p, n in BUDGETS]
    grid = torch.randn(8, 8, 4, generator=torch.Generator().manual_seed(3))
    tensors_pos = {"grid": grid.contiguous()}
    for gh, gw in GRIDS:
        out = Siglip2VisionEmbeddings.resize_positional_embeddings(grid, torch.tensor([[gh, gw]]), gh * gw)
        tensors_pos[f"resized/{gh}x{gw}"] = out[0].contiguous()
    safetensors.torch.save_file(tensors_pos, HERE / "positions.safetensors")

    expected = {
        "target_sizes": target_sizes,
        "position_grids": GRIDS,
        "images": images,
        "pixel_images": PIXEL_IMAGES,
        "spatial_shapes": shapes.tolist(),
        "num_patches": mask.sum(dim=1).tolist(),
        "max_num_patches": MAX_PATCHES,
        "texts": TEXTS,
        "input_ids": enc["input_ids"].tolist(),
        "logit_scale": float(model.logit_scale),
        "logit_bias": float(model.logit_bias),
        "zero_shot": zero_shot,
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
