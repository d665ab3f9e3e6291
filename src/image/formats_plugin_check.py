#!/usr/bin/env python3
"""Measures how far zeroshot's HEIC/AVIF decoding is from the Pillow plugins (not run in CI: the plugins' wheels
bundle their own libheif/libavif, which CI does not install).

Usage (after ctest has run formats_reference, whose expected pixels formats_test shows zeroshot matches exactly):
  python3 -m venv /tmp/plugvenv && /tmp/plugvenv/bin/pip install pillow-heif pillow-avif-plugin numpy
  /tmp/plugvenv/bin/python src/image/formats_plugin_check.py build/src/image/formats_reference

Prints, per HEIC/AVIF file, the max and mean absolute difference (0..255) between
ImageOps.exif_transpose(Image.open(f)).convert("RGB") through the plugins and zeroshot's pixels.
"""
import json
import os
import sys

import numpy as np
import pillow_avif  # noqa: F401  (registers the AVIF opener)
import pillow_heif
from PIL import Image, ImageOps

pillow_heif.register_heif_opener()
ref = sys.argv[1]
manifest = json.load(open(os.path.join(ref, "manifest.json")))
print(f"pillow-heif {pillow_heif.__version__} (libheif {pillow_heif.libheif_version()})")
for c in manifest["cases"]:
    f = c["file"]
    if not f.endswith((".heic", ".avif")):
        continue
    got = np.asarray(ImageOps.exif_transpose(Image.open(os.path.join(ref, f))).convert("RGB")).astype(int)
    exp = np.fromfile(os.path.join(ref, c["rgb"]), np.uint8).reshape(c["height"], c["width"], 3).astype(int)
    if got.shape != exp.shape:
        print(f"{f:28s} shape {got.shape} vs {exp.shape}")
        continue
    d = np.abs(got - exp)
    print(f"{f:28s} max {d.max():3d} mean {d.mean():.4f} pixels differing {np.mean(d.max(axis=2) > 0) * 100:.1f}%")
