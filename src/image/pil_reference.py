#!/usr/bin/python3
"""Reference outputs for src/image/pil_image_test.cpp, made at test time by Pillow and torchvision.

Usage: pil_reference.py FIXTURE_IMAGES_DIR OUT_DIR

Writes into OUT_DIR:
  synth/*           images synthesized here in Pillow's own modes (palette with and without transparency, LA and
                    RGBA with varied alpha, CMYK JPEG, 16-bit gray PNG, 1-bit PNG, odd sizes)
  native/<i>.bin    ImageOps.exif_transpose(Image.open(p)) in its own mode (tobytes(); mode "1" as 0/255 bytes)
                    and the same image .convert("RGB")
  resize/<i>_<k>.bin  Image.resize((w, h), filter) in the image's own mode (Pillow's per-mode rules)
  transform/<i>_<k>.f32  open_clip's inference transform of the image: float32 [3, H, W]
  draft/<i>_<k>.bin  JPEGs only: Image.open(p), draft(None, (d, d)) for the d that asks for 1/2, 1/4 and 1/8 scale,
                    then exif_transpose, in the image's own mode (the engine's opt-in fast decode)
  manifest.json     what each file is

The transform mirrors open_clip 2.24's `open_clip.transform.image_transform(..., is_train=False)`: torchvision
Resize / ResizeKeepRatio / CenterCrop / CenterCropOrPad on the PIL image in its own mode, then convert("RGB"),
ToTensor, Normalize. ResizeKeepRatio and CenterCropOrPad are open_clip's own classes (not in torchvision), written
out below as open_clip 2.24 defines them. When open_clip is importable (the reference virtualenv), the script also
asserts that open_clip's own transform gives identical tensors.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor
import torchvision.transforms.functional as F

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ResizeKeepRatio:
    """open_clip 2.24 ResizeKeepRatio at inference (no random scale/aspect)."""

    def __init__(self, size, longest=0.0, interpolation=InterpolationMode.BICUBIC):
        self.size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        self.longest = float(longest)
        self.interpolation = interpolation

    def __call__(self, img):
        h, w = img.size[::-1]
        target_h, target_w = self.size
        ratio_h, ratio_w = h / target_h, w / target_w
        ratio = max(ratio_h, ratio_w) * self.longest + min(ratio_h, ratio_w) * (1.0 - self.longest)
        size = [round(x * 1.0 / ratio) for x in (h, w)]
        return F.resize(img, size, self.interpolation)


def center_crop_or_pad(img, output_size, fill=0):
    """open_clip 2.24 center_crop_or_pad."""
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    _, image_height, image_width = F.get_dimensions(img)
    crop_height, crop_width = output_size
    if crop_width > image_width or crop_height > image_height:
        padding_ltrb = [
            (crop_width - image_width) // 2 if crop_width > image_width else 0,
            (crop_height - image_height) // 2 if crop_height > image_height else 0,
            (crop_width - image_width + 1) // 2 if crop_width > image_width else 0,
            (crop_height - image_height + 1) // 2 if crop_height > image_height else 0,
        ]
        img = F.pad(img, padding_ltrb, fill=fill)
        _, image_height, image_width = F.get_dimensions(img)
        if crop_width == image_width and crop_height == image_height:
            return img
    crop_top = int(round((image_height - crop_height) / 2.0))
    crop_left = int(round((image_width - crop_width) / 2.0))
    return F.crop(img, crop_top, crop_left, crop_height, crop_width)


def transform(image_size, mean, std, resize_mode, interpolation, fill_color):
    """open_clip 2.24 image_transform(image_size, is_train=False, ...), composed from torchvision."""
    mode = InterpolationMode.BILINEAR if interpolation == "bilinear" else InterpolationMode.BICUBIC
    if resize_mode == "longest":
        ts = [ResizeKeepRatio(image_size, interpolation=mode, longest=1),
              lambda im: center_crop_or_pad(im, image_size, fill=fill_color)]
    elif resize_mode == "squash":
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        ts = [Resize(size, interpolation=mode)]
    else:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if size[0] == size[1]:
            ts = [Resize(size[0], interpolation=mode)]
        else:
            ts = [ResizeKeepRatio(size)]  # 2.24 passes no interpolation here: always bicubic
        ts += [CenterCrop(size)]
    ts += [lambda im: im.convert("RGB"), ToTensor(), Normalize(mean=mean, std=std)]
    return Compose(ts)


def open_clip_transform():
    try:
        from open_clip.transform import image_transform
        return image_transform
    except Exception:
        return None


def raw_bytes(im):
    if im.mode == "1":
        return (np.array(im).astype(np.uint8) * 255).tobytes()
    return im.tobytes()


def synthesize(src_dir, out_dir):
    """Small images in the modes the fixtures lack, made from a real photo so that resizing has texture."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(11)
    photo = Image.open(os.path.join(src_dir, "chelsea.png")).convert("RGB").resize((60, 40), Image.BICUBIC)
    made = []

    def save(im, name, **kw):
        path = os.path.join(out_dir, name)
        im.save(path, **kw)
        made.append(path)

    pal = photo.quantize(colors=37)
    save(pal, "palette.png")
    pal_t = photo.quantize(colors=23)
    pal_t.info["transparency"] = bytes([0, 128, 255] + [200] * 20)
    save(pal_t, "palette_trns.png", transparency=bytes([0, 128, 255] + [200] * 20))
    alpha = Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8))
    alpha.paste(0, (0, 0, 12, 40))
    alpha.paste(255, (48, 0, 60, 40))
    rgba = photo.copy()
    rgba.putalpha(alpha)
    save(rgba, "rgba.png")
    la = photo.convert("L")
    la.putalpha(alpha)
    save(la.convert("LA"), "la.png")
    save(photo.convert("CMYK"), "cmyk_synth.jpg", quality=90)
    g16 = (np.asarray(photo.convert("L"), dtype=np.int32) * 257 + rng.integers(0, 257, (40, 60))).astype(np.int32)
    g16[0, :10] = [0, 1, 100, 254, 255, 256, 1000, 30000, 65534, 65535]
    save(Image.fromarray(g16, mode="I"), "gray16.png")
    save(photo.convert("1"), "bit1.png")
    save(photo.resize((5, 3), Image.BICUBIC), "odd_5x3.png")
    save(photo.resize((1, 300), Image.BICUBIC).quantize(colors=16), "odd_1x300_palette.png")
    save(photo.resize((300, 1), Image.BICUBIC), "odd_300x1.png")
    save(la.resize((7, 9), Image.BICUBIC).convert("LA"), "odd_la_7x9.png")
    for mode in ("1", "L", "P", "RGB", "RGBA"):  # Pillow writes RGBA as 32-bit BGRA that it reads back as RGB
        save(pal if mode == "P" else (rgba if mode == "RGBA" else photo.convert(mode)), f"bmp_{mode.lower()}.bmp")
    save(pal, "palette.gif")
    save(photo.convert("L"), "gray_ramp.gif", optimize=False)  # identity gray color table: Pillow opens it as "L"
    save(rgba, "alpha.webp", lossless=True)
    save(rgba, "alpha_lossy.webp", quality=80)
    return made


def main():
    src_dir, out_dir = sys.argv[1], sys.argv[2]
    for sub in ("native", "resize", "transform", "draft"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    images = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir) if not f.startswith("bad_"))
    images += synthesize(src_dir, os.path.join(out_dir, "synth"))
    bad = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir) if f.startswith("bad_"))

    configs = []
    for size in (32, [24, 40]):
        for resize_mode in ("shortest", "longest", "squash"):
            for interpolation in ("bicubic", "bilinear"):
                configs.append(dict(image_size=size, mean=OPENAI_MEAN, std=OPENAI_STD, resize_mode=resize_mode,
                                    interpolation=interpolation, fill_color=0))
    configs.append(dict(image_size=[40, 20], mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="longest",
                        interpolation="bicubic", fill_color=128))
    configs.append(dict(image_size=[20, 40], mean=OPENAI_MEAN, std=OPENAI_STD, resize_mode="longest",
                        interpolation="bilinear", fill_color=255))
    resize_sizes = [((23, 19), Image.BICUBIC), ((23, 19), Image.BILINEAR), ((70, 9), Image.BICUBIC),
                    ((6, 80), Image.BILINEAR), ((11, 11), Image.NEAREST)]

    oc = open_clip_transform()
    manifest = {"images": [], "bad": bad, "configs": configs, "open_clip_checked": oc is not None}
    for i, path in enumerate(images):
        im = ImageOps.exif_transpose(Image.open(path))
        im.load()
        entry = {"path": path, "mode": im.mode, "width": im.width, "height": im.height}
        with open(os.path.join(out_dir, "native", f"{i}.bin"), "wb") as f:
            f.write(raw_bytes(im))
        with open(os.path.join(out_dir, "native", f"{i}_rgb.bin"), "wb") as f:
            f.write(im.convert("RGB").tobytes())
        entry["resize"] = []
        for k, ((w, h), flt) in enumerate(resize_sizes):
            r = im.resize((w, h), flt)
            assert r.mode == im.mode
            name = f"resize/{i}_{k}.bin"
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(raw_bytes(r))
            with open(os.path.join(out_dir, f"resize/{i}_{k}_rgb.bin"), "wb") as f:
                f.write(r.convert("RGB").tobytes())
            entry["resize"].append({"width": w, "height": h, "filter": int(flt), "file": name})
        entry["transform"] = []
        for k, cfg in enumerate(configs):
            try:
                t = transform(**cfg)(im)
            except ValueError as e:  # an edge resized to 0 pixels: Pillow refuses, so must we
                assert "must be > 0" in str(e), e
                entry["transform"].append({"config": k, "error": str(e)})
                continue
            if oc is not None:
                cfg_oc = dict(cfg)
                cfg_oc["image_size"] = cfg["image_size"] if isinstance(cfg["image_size"], int) else tuple(
                    cfg["image_size"])
                t_oc = oc(is_train=False, **cfg_oc)(im)
                assert torch.equal(t, t_oc), (path, cfg)
            assert t.dtype == torch.float32 and t.shape[0] == 3
            name = f"transform/{i}_{k}.f32"
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(t.contiguous().numpy().tobytes())
            entry["transform"].append({"config": k, "height": t.shape[1], "width": t.shape[2], "file": name})
        entry["draft"] = []
        if Image.open(path).format == "JPEG":
            for k, scale in enumerate((2, 4, 8)):
                d = min(Image.open(path).size) // scale
                if d < 1:
                    continue
                dr = Image.open(path)
                dr.draft(None, (d, d))
                dr = ImageOps.exif_transpose(dr)
                dr.load()
                name = f"draft/{i}_{k}.bin"
                with open(os.path.join(out_dir, name), "wb") as f:
                    f.write(raw_bytes(dr))
                entry["draft"].append({"draft_size": d, "width": dr.width, "height": dr.height, "mode": dr.mode,
                                       "file": name})
        manifest["images"].append(entry)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
