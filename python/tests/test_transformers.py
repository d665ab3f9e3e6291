"""transformers' own pipelines on the same fixture checkpoints and inputs give the same scores (within 1e-4).

Skipped, with a message, where transformers (with PyTorch) cannot be imported; scripts/test-python.sh runs it in
the reference virtualenv (scripts/reference-venv.sh), where it can.
"""

import numpy as np
import pytest
from PIL import Image

import zeroshot
from conftest import AUDIO, CLAP_MODELS, CLIP_MODELS, IMAGES, clap_dir, clip_dir

transformers = pytest.importorskip("transformers", reason="transformers is not installed in this environment")

TOL = 1e-4
IMAGE_FILES = ["astronaut.png", "chelsea.png", "exif_orientation6.jpg", "green_palette.png", "gray.jpg", "tall.webp"]
LABELS = ["cat", "dog", "astronaut", "a red car", "coffee", "rocket"]


def compare(ours, theirs):
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs)) <= TOL, (ours, theirs)


@pytest.mark.parametrize("model", CLIP_MODELS)
def test_image_pipeline(model):
    d = str(clip_dir(model))
    hf = transformers.pipeline("zero-shot-image-classification", model=d, device="cpu")
    zs = zeroshot.pipeline("zero-shot-image-classification", model=d, label_cache=False)
    for f in IMAGE_FILES:
        for x in (str(IMAGES / f), Image.open(IMAGES / f)):
            for template in ("This is a photo of {}.", "a photo of a {}."):
                compare(zs(x, candidate_labels=LABELS, hypothesis_template=template),
                        hf(x, candidate_labels=LABELS, hypothesis_template=template))
    paths = [str(IMAGES / f) for f in IMAGE_FILES]
    for ours, theirs in zip(zs(paths, candidate_labels=LABELS), hf(paths, candidate_labels=LABELS)):
        compare(ours, theirs)


@pytest.mark.parametrize("model", CLAP_MODELS)
def test_audio_pipeline(model):
    import wave

    d = str(clap_dir(model))
    hf = transformers.pipeline("zero-shot-audio-classification", model=d, device="cpu")
    zs = zeroshot.pipeline("zero-shot-audio-classification", model=d, label_cache=False)
    labels = ["dog barking", "rain", "a chord", "a siren", "speech"]
    for f in ("chord_3s.wav", "short_0p35s.wav", "white_noise_3s.wav"):
        with wave.open(str(AUDIO / f)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        compare(zs(x, candidate_labels=labels), hf(x, candidate_labels=labels))
