"""Errors: engine failures are zeroshot.Error with the CLI's one-line message; bad arguments are TypeError or
ValueError; nothing crashes the interpreter (the shared bad_* inputs, a corrupt checkpoint)."""

import os

import numpy as np
import pytest
from PIL import Image

import zeroshot
from conftest import AUDIO, CLAP_MODELS, CLIP_MODELS, IMAGES, clap_dir, clip_dir, run_cli

BAD_IMAGES = sorted(p for p in IMAGES.iterdir() if p.name.startswith("bad_"))
BAD_AUDIO = sorted(p for p in AUDIO.iterdir() if p.name.startswith("bad_") and p.name != "bad_huge_header.wav")


@pytest.fixture(scope="module")
def pipe():
    return zeroshot.pipeline("zero-shot-image-classification", model=str(clip_dir(CLIP_MODELS[0])), label_cache=False)


@pytest.fixture(scope="module")
def audio_pipe():
    return zeroshot.pipeline("zero-shot-audio-classification", model=str(clap_dir(CLAP_MODELS[0])), label_cache=False)


def test_error_is_an_exception():
    assert issubclass(zeroshot.Error, Exception) and zeroshot.Error.__module__ == "zeroshot"


def test_bad_images_have_the_cli_message(pipe):
    assert len(BAD_IMAGES) == 4
    lines, rc, _ = run_cli("classify", "--model", clip_dir(CLIP_MODELS[0]), "--labels", "cat,dog", "--format", "json",
                           "--no-cache", "--quiet", *BAD_IMAGES)
    assert rc == 1
    cli = {l["image"]: l["error"] for l in lines}
    for p in BAD_IMAGES:
        with pytest.raises(zeroshot.Error) as e:
            pipe(str(p), candidate_labels=["cat", "dog"])
        want = cli[str(p)]
        if "exceeds --max-megapixels" in want:
            # The CLI names its own option (--max-megapixels, in megapixels); Python keeps the engine's words (its
            # limit is Model(max_image_pixels=...), in pixels): the same error, each in its caller's terms.
            got = str(e.value)
            assert "exceeds the limit of 100000000 pixels" in got, got
            assert got.split(" pixels")[0] == want.split(" pixels")[0], (got, want)
        else:
            assert str(e.value) == want
        assert "\n" not in str(e.value) and str(p) in str(e.value)
        # The same file as bytes: the same problem, named after the input.
        with pytest.raises(zeroshot.Error, match=r"<bytes #0>"):
            pipe(p.read_bytes(), candidate_labels=["cat", "dog"])


def test_a_bad_image_in_a_list_names_that_image(pipe):
    good = str(IMAGES / "chelsea.png")
    with pytest.raises(zeroshot.Error, match="bad_truncated.jpg"):
        pipe([good] * 9 + [str(IMAGES / "bad_truncated.jpg")] + [good], candidate_labels=["cat", "dog"], batch_size=4)
    with pytest.raises(zeroshot.Error, match="no_such_file.png"):
        pipe(str(IMAGES / "no_such_file.png"), candidate_labels=["cat"])
    # still usable afterwards
    assert pipe(good, candidate_labels=["cat", "dog"])[0]["label"] in ("cat", "dog")


def test_bad_audio(audio_pipe):
    assert len(BAD_AUDIO) == 4
    for p in BAD_AUDIO:
        with pytest.raises(zeroshot.Error) as e:
            audio_pipe(str(p), candidate_labels=["dog", "rain"])
        assert str(p) in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(zeroshot.Error, match=r"<bytes #0>"):
            audio_pipe(p.read_bytes(), candidate_labels=["dog", "rain"])


def test_waveform_errors_name_the_array(audio_pipe):
    with pytest.raises(zeroshot.Error, match=r"<array #1>"):
        audio_pipe.model.embed_audio([np.zeros(4800, np.float32), np.full(48000 * 700, 0.1, np.float32)])


def test_modality_mismatch(pipe, audio_pipe):
    with pytest.raises(zeroshot.Error, match="audio model"):
        audio_pipe.model.embed_images([str(IMAGES / "chelsea.png")])
    with pytest.raises(zeroshot.Error, match="image model"):
        pipe.model.embed_audio([str(AUDIO / "chord_3s.wav")])
    with pytest.raises(ValueError, match="zero-shot-audio-classification"):
        zeroshot.pipeline("zero-shot-image-classification", model=audio_pipe.model)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", "truncated"])
def test_corrupt_checkpoint(tmp_path, content):
    src = clip_dir(CLIP_MODELS[0])
    for f in os.listdir(src):
        if f != "model.safetensors":
            os.symlink(src / f, tmp_path / f)
    if content == "truncated":
        content = (src / "model.safetensors").read_bytes()[:5000]
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(zeroshot.Error) as e:
        zeroshot.Model(str(tmp_path))
    msg = str(e.value)
    assert "model.safetensors" in msg and "\n" not in msg
    _, rc, err = run_cli("embed", "--model", tmp_path, "--text", "a dog", "--format", "json")
    assert rc != 0 and f"zeroshot: {msg}" in err
    with pytest.raises(zeroshot.Error):
        zeroshot.pipeline(model=str(tmp_path))


def test_missing_model():
    with pytest.raises(zeroshot.Error):
        zeroshot.Model("/nonexistent/model/folder")
    with pytest.raises(zeroshot.Error):
        zeroshot.Model("no-such-org/no-such-model", offline=True)


def test_bad_arguments(pipe):
    img = str(IMAGES / "chelsea.png")
    with pytest.raises(ValueError, match="candidate_labels"):
        pipe(img)
    with pytest.raises(ValueError, match="empty"):
        pipe(img, candidate_labels=[])
    with pytest.raises(TypeError, match="str"):
        pipe(img, candidate_labels=["cat", 3])
    with pytest.raises(TypeError):
        pipe(img, candidate_labels="cat,dog")
    with pytest.raises(ValueError, match="{}"):
        pipe(img, candidate_labels=["cat"], hypothesis_template="a photo")
    with pytest.raises(TypeError):
        pipe(img, candidate_labels=["cat"], hypothesis_template=5)
    with pytest.raises(ValueError):
        pipe(img, candidate_labels=["cat"], top_k=0)
    with pytest.raises(TypeError, match="uint8"):
        pipe(np.zeros((8, 8, 3), np.float32), candidate_labels=["cat"])
    with pytest.raises(ValueError, match="shape"):
        pipe(np.zeros((8, 8, 4), np.uint8), candidate_labels=["cat"])
    with pytest.raises(ValueError, match="empty"):
        pipe(np.zeros((0, 8, 3), np.uint8), candidate_labels=["cat"])
    with pytest.raises(TypeError, match="not int"):
        pipe(42, candidate_labels=["cat"])
    with pytest.raises(ValueError, match="URL"):
        pipe("https://example.com/cat.jpg", candidate_labels=["cat"])
    # a non-contiguous or read-only array is fine
    a = np.asarray(Image.open(IMAGES / "chelsea.png").convert("RGB"))
    assert pipe(a[::2, ::2], candidate_labels=["cat", "dog"]) == pipe(np.ascontiguousarray(a[::2, ::2]), candidate_labels=["cat", "dog"])


def test_bad_engine_api_arguments(pipe, audio_pipe):
    m = pipe.model
    with pytest.raises(ValueError, match="precision"):
        zeroshot.Model(m.name, precision="f64")
    with pytest.raises(TypeError):
        zeroshot.Model(m.name, threads="4")
    with pytest.raises(TypeError, match="list"):
        m.embed_texts("a dog")
    with pytest.raises(TypeError, match="str"):
        m.embed_texts(["a dog", None])
    with pytest.raises(TypeError, match="list"):
        m.embed_images(str(IMAGES / "chelsea.png"))
    with pytest.raises(ValueError, match="batch_size"):
        m.embed_images([], batch_size=0)
    clf = zeroshot.ZeroShotClassifier(m, ["cat", "dog"], cache_dir=False)
    with pytest.raises(ValueError, match="shape"):
        clf.classify(np.zeros((2, m.embedding_dim + 1), np.float32))
    with pytest.raises(TypeError, match="float"):
        clf.classify(np.zeros((2, m.embedding_dim), np.int32))
    with pytest.raises(ValueError, match="empty"):
        zeroshot.ZeroShotClassifier(m, [])
    with pytest.raises(TypeError):
        zeroshot.ZeroShotClassifier(m, [1, 2])
    with pytest.raises(ValueError, match="{}"):
        zeroshot.ZeroShotClassifier(m, ["cat"], ["no placeholder"])
    with pytest.raises(ValueError, match="task"):
        zeroshot.pipeline("text-classification", model=m)
    with pytest.raises(ValueError, match="CPU"):
        zeroshot.pipeline(model=m, device="cuda")
    with pytest.raises(TypeError, match="float32 or float64"):
        audio_pipe(np.zeros(100, np.int16), candidate_labels=["dog"])
    with pytest.raises(ValueError, match="1-D"):
        audio_pipe(np.zeros((2, 100), np.float32), candidate_labels=["dog"])
    with pytest.raises(ValueError, match="empty"):
        audio_pipe(np.zeros(0, np.float32), candidate_labels=["dog"])


def test_version_is_the_cmake_project_version():
    import re
    from pathlib import Path

    cmake = (Path(__file__).resolve().parents[2] / "CMakeLists.txt").read_text()
    want = re.search(r"project\(zeroshot VERSION ([0-9.]+)", cmake).group(1)
    assert zeroshot.__version__ == want
