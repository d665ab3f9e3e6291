#!/usr/bin/python3
"""TIFF, HEIC and AVIF files and what the reference decoders make of them, for src/image/formats_test.cpp.

Usage: formats_reference.py FIXTURE_IMAGES_DIR OUT_DIR

TIFF (Pillow opens it itself; Debian's Pillow 9.4): files written by Pillow (every compression it writes: none, LZW,
deflate, PackBits, JPEG, group4; modes 1, L, LA, P, RGB, RGBA, CMYK, I;16; a multi-page file; an orientation tag) and
by a small writer below for the layouts Pillow reads but does not write (tiles, separate planes, 2/4/16-bit
samples, min-is-white, associated alpha, an unspecified extra sample, a 4-bit palette, big-endian). Expected:
ImageOps.exif_transpose(Image.open(f)) in its own mode (tobytes(), when the mode is one zeroshot holds) and
.convert("RGB").

HEIC and AVIF (Pillow opens them only through plugins, which CI does not install): files encoded here by the
libraries' own tools (heif-enc, avifenc, from the fixture photos), expected pixels from the libraries' own decoders
(heif-convert, which applies the HEIF transformations as pillow-heif does; avifdec, which does not, so its output
is transposed here the way pillow-avif-plugin's orientation and Pillow's exif_transpose do it). Skipped (with a
note in the manifest) when the tools are missing.

Writes OUT_DIR/files/*, OUT_DIR/expected/*.bin and OUT_DIR/manifest.json
([{"file", "width", "height", "mode", "native" (or null), "rgb"}]).
"""
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys

from PIL import Image, ImageOps

HELD_MODES = {"1", "L", "LA", "I", "P", "RGB", "RGBA", "CMYK"}


def tiff_bytes(width, height, bps, photometric, rows, *, extra=None, planar=1, tile=None, colormap=None,
               big_endian=False, sample_format=None):
    """A minimal uncompressed TIFF. rows: list of per-row sample lists (contiguous), or per-plane lists of rows."""
    e = ">" if big_endian else "<"
    spp = len(bps)
    pack = {8: "B", 16: "H"}

    def row_bytes(samples, bits):
        if bits in pack:
            return struct.pack(e + pack[bits] * len(samples), *samples)
        out, acc, n = bytearray(), 0, 0
        for s in samples:
            acc, n = (acc << bits) | s, n + bits
            if n == 8:
                out.append(acc)
                acc, n = 0, 0
        if n:
            out.append(acc << (8 - n))
        return bytes(out)

    planes = [rows] if planar == 1 else rows
    chunks = []
    if tile:
        tw, th = tile
        for plane in planes:
            per_px = len(plane[0]) // width
            for ty in range(0, height, th):
                for tx in range(0, width, tw):
                    data = b""
                    for y in range(ty, ty + th):
                        src = plane[y] if y < height else [0] * (width * per_px)
                        samples = src[tx * per_px:(tx + tw) * per_px]
                        samples += [0] * (tw * per_px - len(samples))
                        data += row_bytes(samples, bps[0])
                    chunks.append(data)
    else:
        for plane in planes:
            chunks.append(b"".join(row_bytes(r, bps[0]) for r in plane))
    header_size = 8
    data = b"".join(chunks)
    offsets, pos = [], header_size
    for c in chunks:
        offsets.append(pos)
        pos += len(c)
    extra_blobs = []
    tags = [(256, 4, [width]), (257, 4, [height]), (258, 3, list(bps)), (259, 3, [1]), (262, 3, [photometric]),
            (277, 3, [spp]), (284, 3, [planar])]
    if tile:
        tags += [(322, 3, [tile[0]]), (323, 3, [tile[1]]), (324, 4, offsets), (325, 4, [len(c) for c in chunks])]
    else:
        tags += [(273, 4, offsets), (278, 4, [height]), (279, 4, [len(c) for c in chunks])]
    if extra is not None:
        tags.append((338, 3, list(extra)))
    if colormap is not None:
        tags.append((320, 3, colormap))
    if sample_format is not None:
        tags.append((339, 3, [sample_format] * spp))
    tags.sort()
    ifd_pos = header_size + len(data)
    ifd_size = 2 + 12 * len(tags) + 4
    blob_pos = ifd_pos + ifd_size
    entries = b""
    blobs = b""
    for tag, typ, values in tags:
        fmt = "H" if typ == 3 else "I"
        payload = struct.pack(e + fmt * len(values), *values)
        if len(payload) <= 4:
            entries += struct.pack(e + "HHI", tag, typ, len(values)) + payload.ljust(4, b"\0")
        else:
            entries += struct.pack(e + "HHII", tag, typ, len(values), blob_pos + len(blobs))
            blobs += payload
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", ifd_pos)
    return head + data + struct.pack(e + "H", len(tags)) + entries + struct.pack(e + "I", 0) + blobs + b"".join(
        extra_blobs)


def gradient_rows(w, h, spp, maxval, seed=0):
    return [[((x * 37 + y * 53 + c * 91 + seed) * 2654435761 >> 7) % (maxval + 1) for x in range(w) for c in range(spp)]
            for y in range(h)]


def hand_written_tiffs():
    w, h = 37, 23
    out = {}
    out["hand_rgb_tiled.tif"] = tiff_bytes(w, h, (8, 8, 8), 2, gradient_rows(w, h, 3, 255), tile=(16, 16))
    planes = [gradient_rows(w, h, 1, 255, seed=s) for s in range(3)]
    out["hand_rgb_planar.tif"] = tiff_bytes(w, h, (8, 8, 8), 2, planes, planar=2)
    out["hand_rgb_planar_tiled.tif"] = tiff_bytes(w, h, (8, 8, 8), 2, planes, planar=2, tile=(16, 32))
    out["hand_rgb16.tif"] = tiff_bytes(w, h, (16, 16, 16), 2, gradient_rows(w, h, 3, 65535))
    out["hand_rgb16_be.tif"] = tiff_bytes(w, h, (16, 16, 16), 2, gradient_rows(w, h, 3, 65535), big_endian=True)
    out["hand_rgba16.tif"] = tiff_bytes(w, h, (16, 16, 16, 16), 2, gradient_rows(w, h, 4, 65535), extra=[2])
    out["hand_rgba_assoc.tif"] = tiff_bytes(w, h, (8, 8, 8, 8), 2, premultiplied(gradient_rows(w, h, 4, 255)),
                                            extra=[1])
    out["hand_rgbx.tif"] = tiff_bytes(w, h, (8, 8, 8, 8), 2, gradient_rows(w, h, 4, 255), extra=[0])
    out["hand_rgba_noextra.tif"] = tiff_bytes(w, h, (8, 8, 8, 8), 2, gradient_rows(w, h, 4, 255))
    out["hand_gray_miniswhite.tif"] = tiff_bytes(w, h, (8,), 0, gradient_rows(w, h, 1, 255))
    out["hand_gray2.tif"] = tiff_bytes(w, h, (2,), 1, gradient_rows(w, h, 1, 3))
    out["hand_gray4_miniswhite.tif"] = tiff_bytes(w, h, (4,), 0, gradient_rows(w, h, 1, 15))
    out["hand_bilevel_miniswhite.tif"] = tiff_bytes(w, h, (1,), 0, gradient_rows(w, h, 1, 1))
    out["hand_gray16.tif"] = tiff_bytes(w, h, (16,), 1, gradient_rows(w, h, 1, 65535))
    out["hand_gray16_small.tif"] = tiff_bytes(w, h, (16,), 1, gradient_rows(w, h, 1, 300))
    out["hand_gray16_signed.tif"] = tiff_bytes(w, h, (16,), 1, gradient_rows(w, h, 1, 65535), sample_format=2)
    cmap = [(i * 4369) % 65536 for i in range(16)] + [(i * 9000) % 65536 for i in range(16)] + [
        (65535 - i * 4000) for i in range(16)]
    out["hand_palette4.tif"] = tiff_bytes(w, h, (4,), 3, gradient_rows(w, h, 1, 15), colormap=cmap)
    out["hand_la.tif"] = tiff_bytes(w, h, (8, 8), 1, gradient_rows(w, h, 2, 255), extra=[2])
    return out


def premultiplied(rows):
    out = []
    for r in rows:
        o = []
        for i in range(0, len(r), 4):
            a = r[i + 3]
            o += [c * a // 255 for c in r[i:i + 3]] + [a]
        out.append(o)
    return out


def pillow_tiffs(images_dir):
    photo = Image.open(os.path.join(images_dir, "chelsea.png")).convert("RGB").resize((61, 43))
    out = {}

    def save(name, im, **kw):
        b = io.BytesIO()
        im.save(b, "TIFF", **kw)
        out[name] = b.getvalue()

    for comp in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"):
        save(f"pil_rgb_{comp}.tif", photo, compression=comp)
    save("pil_rgb_jpeg_q50.tif", photo, compression="jpeg", quality=50)
    rgba = photo.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    save("pil_rgba_lzw.tif", rgba, compression="tiff_lzw")
    save("pil_rgba_raw.tif", rgba)
    save("pil_la_deflate.tif", rgba.convert("LA"), compression="tiff_adobe_deflate")
    save("pil_l_lzw.tif", photo.convert("L"), compression="tiff_lzw")
    save("pil_l_jpeg.tif", photo.convert("L"), compression="jpeg")
    save("pil_1_raw.tif", photo.convert("1"))
    save("pil_1_group4.tif", photo.convert("1"), compression="group4")
    save("pil_p_raw.tif", photo.convert("P", palette=Image.ADAPTIVE, colors=37))
    save("pil_p_lzw.tif", photo.convert("P"), compression="tiff_lzw")
    save("pil_cmyk_lzw.tif", photo.convert("CMYK"), compression="tiff_lzw")
    save("pil_cmyk_raw.tif", photo.convert("CMYK"))
    gray16 = Image.open(os.path.join(images_dir, "camera.png")).convert("I").resize((40, 30))
    gray16 = gray16.point(lambda v: v * 257).convert("I;16")
    save("pil_i16_raw.tif", gray16)
    save("pil_i16_deflate.tif", gray16, compression="tiff_adobe_deflate")
    for o in (3, 6, 8):
        save(f"pil_orientation{o}.tif", photo, compression="tiff_lzw", tiffinfo={274: o})
    save("pil_multipage.tif", photo.rotate(90, expand=True), save_all=True,
         append_images=[photo.convert("L"), photo], compression="tiff_lzw")
    return out


def expected_from_pillow(path):
    """What current Pillow's ImageOps.exif_transpose(Image.open(path)) gives for a TIFF.

    Pillow applies a TIFF's orientation tag itself when it loads the pixels (TiffImagePlugin.load_end). Current
    Pillow (checked with 13.0) then drops the tag, so exif_transpose does nothing more; Pillow 9.4 (Debian 12) keeps
    it and exif_transpose applies it a second time (orientation 6 ends up rotated 180 degrees). zeroshot follows
    current Pillow, the orientation applied once: Image.open + load, which every version does the same way.
    """
    im = Image.open(path)
    im.load()
    return im


def record(out_dir, manifest, name, im, native_ok=True):
    native = None
    # zeroshot holds Pillow's I;16 as I (same values; Pillow 9.4 converts both to RGB by clipping) and RGBX as RGB.
    if im.mode in ("I;16", "I;16B"):
        im = im.convert("I")
    elif im.mode == "RGBX":
        im = im.convert("RGB")
    if native_ok and im.mode in HELD_MODES:
        native = f"expected/{name}.native.bin"
        data = im.tobytes() if im.mode != "1" else bytes(255 if v else 0 for v in im.getdata())
        if im.mode == "I":
            data = im.tobytes("raw", "I")
        with open(os.path.join(out_dir, native), "wb") as f:
            f.write(data)
    rgb = f"expected/{name}.rgb.bin"
    with open(os.path.join(out_dir, rgb), "wb") as f:
        f.write(im.convert("RGB").tobytes())
    manifest.append({"file": f"files/{name}", "width": im.width, "height": im.height, "mode": im.mode,
                     "native": native, "rgb": rgb})


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def heif_and_avif(images_dir, out_dir, manifest, notes):
    src = os.path.join(out_dir, "src")
    os.makedirs(src, exist_ok=True)
    photo = Image.open(os.path.join(images_dir, "astronaut.png")).convert("RGB").resize((64, 48))
    photo.info = {}  # no ICC profile: heif-convert cannot write the one it would carry over into its PNG
    photo.save(os.path.join(src, "photo.png"))
    odd = photo.resize((33, 21))
    odd.save(os.path.join(src, "odd.png"))
    rgba = photo.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    rgba.save(os.path.join(src, "alpha.png"))
    files = os.path.join(out_dir, "files")

    if shutil.which("heif-enc") and shutil.which("heif-convert"):
        # exif6.heic: heif-enc turns the JPEG's EXIF orientation 6 into an irot box and keeps the EXIF block (with
        # its orientation 6), which a decoder must not apply a second time.
        for name, png, args in (("photo.heic", "photo.png", ["-q", "60"]), ("odd.heic", "odd.png", ["-q", "80"]),
                                ("alpha.heic", "alpha.png", ["-q", "70"]),
                                ("exif6.heic", os.path.join(images_dir, "exif_orientation6.jpg"), ["-q", "30"])):
            out = os.path.join(files, name)
            run(["heif-enc", *args, "-o", out, os.path.join(src, png)])
            dec = os.path.join(src, name + ".png")
            run(["heif-convert", out, dec])
            record(out_dir, manifest, name, Image.open(dec), native_ok=True)
    else:
        notes.append("heif-enc/heif-convert missing: no HEIC cases")

    if shutil.which("avifenc") and shutil.which("avifdec"):
        cases = [("photo.avif", "photo.png", []), ("odd420.avif", "odd.png", ["-y", "420"]),
                 ("lossless.avif", "photo.png", ["-l"]), ("alpha.avif", "alpha.png", []),
                 ("ten_bit.avif", "photo.png", ["-d", "10"])]
        for angle in range(4):
            for mode in (None, 0, 1):
                if angle == 0 and mode is None:
                    continue
                extra = ["--irot", str(angle)] if angle else []
                if mode is not None:
                    extra += ["--imir", str(mode)]
                cases.append((f"irot{angle}_imir{'-' if mode is None else mode}.avif", "odd.png", extra))
        # exif6.avif: avifenc turns the JPEG's EXIF orientation 6 into irot 3 and keeps the EXIF block.
        cases.append(("exif6.avif", os.path.join(images_dir, "exif_orientation6.jpg"), []))
        for name, png, args in cases:
            out = os.path.join(files, name)
            run(["avifenc", "-s", "10", *args, os.path.join(src, png), out])
            dec = os.path.join(src, name + ".png")
            run(["avifdec", "-d", "8", out, dec])
            im = Image.open(dec)
            im.load()
            # avifdec ignores irot/imir; apply them, as avifdec --info reports them, in HEIF's order (rotation, then
            # mirror), as pillow-avif-plugin + exif_transpose do.
            info = subprocess.run(["avifdec", "--info", out], check=True, capture_output=True, text=True).stdout
            irot = re.search(r"irot \(Rotation\)\s*:\s*(\d)", info)
            imir = re.search(r"imir \(Mirror\)\s*:\s*Mode (\d)", info)
            angle = int(irot[1]) if irot else 0
            im = [im, im.transpose(Image.ROTATE_90), im.transpose(Image.ROTATE_180),
                  im.transpose(Image.ROTATE_270)][angle]
            if imir:
                im = im.transpose(Image.FLIP_LEFT_RIGHT if imir[1] == "1" else Image.FLIP_TOP_BOTTOM)
            record(out_dir, manifest, name, im, native_ok=True)
    else:
        notes.append("avifenc/avifdec missing: no AVIF cases")


def main():
    images_dir, out_dir = sys.argv[1], sys.argv[2]
    shutil.rmtree(out_dir, ignore_errors=True)
    for d in ("files", "expected"):
        os.makedirs(os.path.join(out_dir, d))
    manifest, notes = [], []
    tiffs = pillow_tiffs(images_dir)
    tiffs.update(hand_written_tiffs())
    for name, data in sorted(tiffs.items()):
        path = os.path.join(out_dir, "files", name)
        with open(path, "wb") as f:
            f.write(data)
        record(out_dir, manifest, name, expected_from_pillow(path))
    heif_and_avif(images_dir, out_dir, manifest, notes)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"cases": manifest, "notes": notes}, f, indent=1)
    print(f"formats_reference: {len(manifest)} cases; " + ("; ".join(notes) or "all formats"))


if __name__ == "__main__":
    main()
