"""`zeroshot score --scale 100` against torchmetrics' CLIPScore on the shared CLIP fixtures.

    clip_score_check.py BUILD_DIR SHARED_FIXTURES

torchmetrics runs the checkpoint through transformers' CLIPModel and CLIPProcessor and reports
max(100 * mean(cos), 0) over what it was given; each pair is given alone here (reset between pairs), so its number is
the per-pair 100 * max(cos, 0) that `zeroshot score --scale 100` prints. Images go in as uint8 tensors of the file
opened as the Hugging Face pipeline opens it (EXIF transpose, RGB). The whole set at once, max(100 * mean(cos), 0)
(torchmetrics clips the mean; the paper, and the CLI's mean_clip_score, average clipped scores), is compared with the
same expression of the CLI's unclipped cosines, so negative cosines are checked too.
Exit status 0 when every number agrees within TOL, 1 otherwise.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps
from torchmetrics.multimodal.clip_score import CLIPScore

# 100 x the cosine tolerance the fixtures allow for logits (1e-3 on exp(logit_scale) * cos with scale 100).
TOL = 1e-3

PAIRS = [
    ("chelsea.png", "a photo of a cat"),
    ("astronaut.png", "a photo of a cat"),
    ("coffee.png", "a cup of coffee"),
    ("cmyk.jpg", "a photo"),
    ("exif_orientation6.jpg", "a rocket, on the launch pad"),
    ("tall.webp", "Two dogs playing in the snow."),
]


def image_tensor(path):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def main():
    build, fixtures = sys.argv[1], sys.argv[2]
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    images = os.path.join(fixtures, "images")
    failures = 0
    for model_name in ("clip-tiny-quickgelu", "clip-tiny-gelu-f16"):
        model = os.path.join(fixtures, "clip", model_name)
        metric = CLIPScore(model_name_or_path=model)
        ref = []
        for img, cap in PAIRS:
            metric.reset()
            metric.update(image_tensor(os.path.join(images, img)), cap)
            ref.append(float(metric.compute()))
        metric.reset()
        metric.update([image_tensor(os.path.join(images, i)) for i, _ in PAIRS], [c for _, c in PAIRS])
        ref_all = float(metric.compute())

        with tempfile.TemporaryDirectory() as tmp:
            captions = os.path.join(tmp, "captions.csv")
            with open(captions, "w") as f:
                f.write("image,caption\n")
                for img, cap in PAIRS:
                    f.write('%s,"%s"\n' % (os.path.join(images, img), cap.replace('"', '""')))
            env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=os.path.join(tmp, "hf"), XDG_CACHE_HOME=tmp)
            out = subprocess.run(
                [os.path.join(build, "zeroshot"), "score", "-m", model, "-q", "--format", "json", "--scale", "100",
                 "--captions", captions], env=env, capture_output=True, text=True, check=True).stdout
        lines = [json.loads(l) for l in out.splitlines() if l.strip()]
        ours = [l["clip_score"] for l in lines[:-1]]
        cos = [l["cosine"] for l in lines[:-1]]
        for (img, cap), r, o in zip(PAIRS, ref, ours):
            ok = abs(r - o) <= TOL
            failures += not ok
            print("%s %-22s %-32r torchmetrics %10.5f zeroshot %10.5f %s" % (model_name, img, cap, r, o,
                                                                              "ok" if ok else "MISMATCH"))
        # The whole set: torchmetrics' max(100 * mean(cos), 0) from the CLI's unclipped cosines, which checks the
        # negative cosines too (the per-pair scores clip them to 0).
        mine = max(100 * float(np.mean(cos)), 0.0)
        ok = abs(ref_all - mine) <= TOL
        failures += not ok
        print("%s set: torchmetrics %.5f, max(100 * mean(zeroshot cosines), 0) %.5f %s" % (
            model_name, ref_all, mine, "ok" if ok else "MISMATCH"))
        if len(ours) != len(PAIRS):
            print("%s: %d scores for %d pairs" % (model_name, len(ours), len(PAIRS)))
            failures += 1
    print("clip_score_check: %s" % ("ok" if not failures else "%d mismatches" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
