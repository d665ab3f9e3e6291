"""Turns the inputs people pass (paths, bytes, PIL images, numpy arrays) into the few forms the engine takes.

Images: a path (str or os.PathLike) and encoded bytes go to the engine's own decoder (Pillow-exact, EXIF
orientation applied); a PIL image is converted as transformers' ``load_image`` does (``ImageOps.exif_transpose``
then ``convert("RGB")``) and handed over as 8-bit RGB pixels; a numpy uint8 array is taken as RGB (H, W, 3) or
grayscale (H, W), which is replicated to RGB as Pillow's L -> RGB conversion does.

Audio: a path goes to the engine's decoder (ffmpeg's semantics: mono, resampled to the model's rate); a 1-D float
array is taken as samples at the model's sampling rate (as transformers' pipeline takes it) and handed to the engine
as a 32-bit float WAV file, which the engine reads exactly as stored.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
from typing import Any, List, Sequence, Tuple

import numpy as np

from . import _zeroshot


def _is_pil_image(x: Any) -> bool:
    # Only an already imported PIL can have made x: no import (and no hard dependency) otherwise.
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(x, pil.Image)


def _path(x: Any) -> str | None:
    if isinstance(x, str):
        if x.startswith(("http://", "https://")):
            raise ValueError(f"{x}: URLs are not fetched; download the file and pass its path")
        return x
    if isinstance(x, os.PathLike):
        p = os.fspath(x)
        return os.fsdecode(p) if isinstance(p, bytes) else p
    return None


def image_item(x: Any, i: int) -> Tuple[Any, str]:
    """(what the engine takes, the name used in error messages) for one image."""
    p = _path(x)
    if p is not None:
        return p, p
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x), f"<bytes #{i}>"
    if _is_pil_image(x):
        from PIL import ImageOps

        rgb = ImageOps.exif_transpose(x).convert("RGB")
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), f"<PIL image #{i}>"
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8:
            raise TypeError(f"image #{i}: a numpy image must be uint8 (H, W, 3) or (H, W), not {x.dtype}")
        if x.ndim == 2:
            x = np.repeat(x[:, :, None], 3, axis=2)
        elif x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"image #{i}: a numpy image must have shape (H, W, 3) or (H, W), not {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"image #{i}: empty image array {x.shape}")
        return np.ascontiguousarray(x), f"<array #{i}>"
    raise TypeError(
        f"image #{i}: expected a path (str or os.PathLike), bytes, a PIL.Image.Image or a numpy uint8 array, "
        f"not {type(x).__name__}"
    )


def image_items(images: Sequence[Any]) -> Tuple[List[Any], List[str]]:
    items, names = [], []
    for i, x in enumerate(images):
        item, name = image_item(x, i)
        items.append(item)
        names.append(name)
    return items, names


def _write_float_wav(path: str, samples: np.ndarray, rate: int) -> None:
    # A WAVE_FORMAT_IEEE_FLOAT mono file: the engine decodes float WAV as stored, so the samples reach the feature
    # extractor bit for bit. (The public API takes audio as files only.)
    data = np.ascontiguousarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", 3, 1, rate, rate * 4, 4, 32, 0)
    fact = struct.pack("<I", samples.size)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
    body += b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body)
        f.write(data)


class AudioFiles:
    """Context manager: the paths of the given audio inputs, with temporary files for arrays and bytes.

    Engine errors that name a temporary file are re-raised naming the input instead (``<array #i>``).
    """

    def __init__(self, audios: Sequence[Any], sampling_rate: int):
        self._audios = audios
        self._rate = sampling_rate
        self._tmp: str | None = None
        self.paths: List[str] = []
        self._names: dict[str, str] = {}

    def __enter__(self) -> "AudioFiles":
        try:
            for i, x in enumerate(self._audios):
                self.paths.append(self._one(x, i))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _temp(self, name: str, suffix: str) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="zeroshot-audio-")
        path = os.path.join(self._tmp, f"{len(self._names)}{suffix}")
        self._names[path] = name
        return path

    def _one(self, x: Any, i: int) -> str:
        p = _path(x)
        if p is not None:
            return p
        if isinstance(x, (bytes, bytearray, memoryview)):
            path = self._temp(f"<bytes #{i}>", ".audio")
            with open(path, "wb") as f:
                f.write(bytes(x))
            return path
        if isinstance(x, np.ndarray):
            if not np.issubdtype(x.dtype, np.floating):
                raise TypeError(f"audio #{i}: a numpy waveform must be float32 or float64, not {x.dtype}")
            if x.ndim != 1:
                raise ValueError(f"audio #{i}: a numpy waveform must be 1-D (mono samples), not shape {x.shape}")
            if x.size == 0:
                raise ValueError(f"audio #{i}: empty waveform")
            path = self._temp(f"<array #{i}>", ".wav")
            _write_float_wav(path, x, self._rate)
            return path
        raise TypeError(
            f"audio #{i}: expected a path (str or os.PathLike), bytes or a 1-D float numpy array, not {type(x).__name__}"
        )

    def rename_error(self, e: _zeroshot.Error) -> _zeroshot.Error:
        msg = str(e)
        for path, name in self._names.items():
            msg = msg.replace(path, name)
        return _zeroshot.Error(msg)

    def __exit__(self, *exc: Any) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
