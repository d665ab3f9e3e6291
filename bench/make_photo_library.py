#!/usr/bin/python3
"""A folder of phone-sized photos for bench/photo_library.py: 12 MP (4032x3024) files made from the 1,000 photos of
../shared/datasets/imagenet-samples, written outside the repository.

    /work/models-cache/photos-venv/bin/python bench/make_photo_library.py /tmp/photos --count 24
    ... --kind progressive    # progressive JPEGs (what many editors and web exports write)
    ... --kind png            # PNGs (screenshots, exports: no DCT scaling possible)

Each source photo is upscaled with Pillow's BICUBIC to 4032x3024 and given a light Gaussian grain (sigma 3, seeded
per file) so that the entropy-coded data is about as dense as a real phone photo's (an upscale alone compresses to
a fraction of a real photo's size and decodes faster than one). JPEGs are quality 90, 4:2:0, like a phone's camera
app; every fourth one is stored as a phone stores a portrait shot: sideways (3024 wide) with EXIF orientation 6, so
the EXIF rotation is on the measured path. Needs Pillow and numpy (a virtualenv: see docs/benchmarks.md).
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 4032, 3024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder to create (not inside the repository)")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--kind", choices=["jpeg", "progressive", "png"], default="jpeg")
    ap.add_argument("--source", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" /
                                            "imagenet-samples"))
    ap.add_argument("--grain", type=float, default=3.0, help="sigma of the added noise, in 8-bit levels (0: none)")
    a = ap.parse_args()
    src = sorted(p for p in Path(a.source).iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if not src:
        sys.exit(f"{a.source}: no photos")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # Spread over the whole set (different classes, colours and textures), same choice every run.
    step = max(1, len(src) // a.count)
    for i in range(a.count):
        p = src[(i * step) % len(src)]
        img = Image.open(p).convert("RGB").resize((W, H), Image.BICUBIC)
        if a.grain > 0:
            rng = np.random.default_rng(i)
            arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, a.grain, (H, W, 3)).astype(np.float32)
            img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
        name = out / f"photo_{i:03d}_{p.stem.split('_', 1)[-1]}"
        if a.kind == "png":
            img.save(f"{name}.png", compress_level=6)
            continue
        kw = {"quality": 90, "subsampling": 2, "progressive": a.kind == "progressive"}
        if i % 4 == 3:  # a portrait shot as the sensor wrote it: rotate back on display (orientation 6)
            exif = Image.Exif()
            exif[0x0112] = 6
            img = img.transpose(Image.ROTATE_90)
            kw["exif"] = exif.tobytes()
        img.save(f"{name}.jpg", **kw)
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {a.count} {a.kind} files, {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
