"""Image pipeline and engine API against the reference outputs of the shared CLIP fixtures, through every input form
(path, pathlib.Path, bytes, PIL image, numpy array), and against `zeroshot classify --format json`."""

import pathlib

import numpy as np
import pytest
from PIL import Image

import zeroshot
from conftest import (CLIP_MODELS, IMAGES, assert_scores_match, clip_dir, expected_json, read_safetensors, run_cli,
                      same_as_cli)


@pytest.fixture(scope="module", params=CLIP_MODELS)
def clip(request):
    d = clip_dir(request.param)
    return zeroshot.pipeline("zero-shot-image-classification", model=str(d), label_cache=False), expected_json(d)


def single_template_cases(ex):
    return [c for c in ex["zero_shot"] if len(c["templates"]) == 1]


def test_every_single_template_case_from_a_path(clip):
    pipe, ex = clip
    cases = single_template_cases(ex)
    assert len(cases) >= 21
    for c in cases:
        got = pipe(str(IMAGES / c["image"]), candidate_labels=c["labels"], hypothesis_template=c["templates"][0])
        assert_scores_match(got, c["result"])


def test_multi_template_cases_through_the_classifier(clip):
    pipe, ex = clip
    cases = [c for c in ex["zero_shot"] if len(c["templates"]) > 1]
    assert cases
    for c in cases:
        clf = zeroshot.ZeroShotClassifier(pipe.model, c["labels"], c["templates"], cache_dir=False)
        (got,) = clf.classify_images([IMAGES / c["image"]])
        assert_scores_match(got, c["result"])


def first_case_per_image(ex):
    seen = {}
    for c in single_template_cases(ex):
        seen.setdefault(c["image"], c)
    return list(seen.values())


def as_pil(path):
    with Image.open(path) as im:
        im.load()
        return im.copy() if im.format != "JPEG" else im  # keep JPEG's EXIF for exif_transpose


@pytest.mark.parametrize("form", ["pathlib", "bytes", "pil", "numpy"])
def test_every_input_form(clip, form):
    pipe, ex = clip
    cases = first_case_per_image(ex)
    assert len(cases) == len(ex["images"])
    for c in cases:
        p = IMAGES / c["image"]
        if form == "pathlib":
            x = pathlib.Path(p)
        elif form == "bytes":
            x = p.read_bytes()
        elif form == "pil":
            x = Image.open(p)
        else:
            # As transformers' load_image hands pixels over: EXIF-transposed, converted to RGB.
            from PIL import ImageOps

            x = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
        got = pipe(x, candidate_labels=c["labels"], hypothesis_template=c["templates"][0])
        assert_scores_match(got, c["result"])


def test_grayscale_numpy_is_replicated_like_pillow():
    pipe = zeroshot.pipeline(model=str(clip_dir(CLIP_MODELS[0])), label_cache=False)
    gray = np.asarray(Image.open(IMAGES / "camera.png").convert("L"))
    assert gray.ndim == 2
    a = pipe(gray, candidate_labels=["cat", "dog", "coins"])
    b = pipe(np.stack([gray] * 3, axis=2), candidate_labels=["cat", "dog", "coins"])
    c = pipe(Image.fromarray(gray, "L"), candidate_labels=["cat", "dog", "coins"])
    assert a == b == c


def test_a_list_gives_a_list_per_image_in_batches(clip):
    pipe, ex = clip
    cases = first_case_per_image(ex)
    labels, template = cases[0]["labels"], cases[0]["templates"][0]
    same = [c for c in cases if c["labels"] == labels and c["templates"][0] == template]
    assert len(same) > 8  # more than one batch
    forms = [IMAGES / c["image"] if i % 2 else (IMAGES / c["image"]).read_bytes() for i, c in enumerate(same)]
    for bs in (1, 3, 8):
        got = pipe(forms, candidate_labels=labels, hypothesis_template=template, batch_size=bs)
        assert isinstance(got, list) and len(got) == len(same)
        for g, c in zip(got, same):
            assert_scores_match(g, c["result"])
    assert pipe([], candidate_labels=labels) == []


def test_output_shape_and_top_k(clip):
    pipe, ex = clip
    c = first_case_per_image(ex)[0]
    got = pipe(str(IMAGES / c["image"]), candidate_labels=c["labels"], hypothesis_template=c["templates"][0])
    assert all(list(r) == ["score", "label"] and isinstance(r["score"], float) for r in got)
    assert [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)
    assert abs(sum(r["score"] for r in got) - 1) < 1e-5
    top = pipe(str(IMAGES / c["image"]), candidate_labels=c["labels"], hypothesis_template=c["templates"][0], top_k=2)
    assert top == got[:2]


def test_default_template_is_the_pipelines():
    d = str(clip_dir(CLIP_MODELS[0]))
    pipe = zeroshot.pipeline("zero-shot-image-classification", model=d, label_cache=False)
    img, labels = str(IMAGES / "chelsea.png"), ["cat", "dog", "rocket"]
    assert pipe(img, candidate_labels=labels) == pipe(
        img, candidate_labels=labels, hypothesis_template="This is a photo of {}."
    )


def test_embeddings_match_the_reference(clip):
    pipe, ex = clip
    t = read_safetensors(clip_dir(pipe.model.name) / "expected.safetensors")
    m = pipe.model
    img = m.embed_images([IMAGES / f for f in ex["images"]])
    assert img.dtype == np.float32 and img.shape == t["image_embeds"].shape
    assert np.abs(img - t["image_embeds"]).max() <= 1e-4 * np.abs(t["image_embeds"]).max()
    px = np.stack([t["pixel_values/" + f] for f in ex["images"]])
    from_px = m.embed_pixel_values(px)
    assert np.abs(from_px - t["image_embeds"]).max() <= 1e-4 * np.abs(t["image_embeds"]).max()
    txt = m.embed_texts(ex["texts"])
    ok = [i for i, s in enumerate(ex["texts"]) if s not in ex.get("ftfy_sensitive_texts", [])]
    assert np.abs(txt[ok] - t["text_embeds"][ok]).max() <= 1e-4 * np.abs(t["text_embeds"]).max()
    assert m.embedding_dim == img.shape[1]
    assert m.modality == "image" and m.model_type == "clip" and m.image_size > 0
    assert len(m.fingerprint) == 32
    assert m.tokenize(ex["texts"][0]) == ex["input_ids"][0]
    # The array owns the engine's buffer (no copy) and is an ordinary writable float32 array.
    assert not img.flags.owndata and img.flags.writeable and img.flags.c_contiguous


def test_classifier_cosines_and_label_embeddings():
    m = zeroshot.Model(str(clip_dir(CLIP_MODELS[0])))
    clf = zeroshot.ZeroShotClassifier(m, ["cat", ["dog", "puppy"]], ["a photo of a {}.", "art of the {}."], cache_dir=False)
    assert clf.labels == ["cat", "dog"] and not clf.label_embeddings_cached
    le = clf.label_embeddings
    assert le.shape == (2, m.embedding_dim) and not le.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(le, axis=1), 1, atol=1e-5)
    e = m.embed_images([IMAGES / "chelsea.png", IMAGES / "coins.png"])
    cos = clf.cosines(e)
    want = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ le.T
    np.testing.assert_allclose(cos, want, atol=1e-5)
    s = cos * m.logit_scale
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for row, got in zip(p, clf.classify(e)):
        assert {r["label"]: r["score"] for r in got} == pytest.approx(dict(zip(clf.labels, row)), abs=1e-6)
    assert clf.classify(e[0]) == clf.classify(e)[0]


@pytest.mark.parametrize("model", CLIP_MODELS)
def test_same_numbers_as_the_cli(model, tmp_path):
    d = clip_dir(model)
    files = sorted(p for p in IMAGES.iterdir() if not p.name.startswith("bad_"))
    labels = ["cat", "dog", "a red car", "coffee", "rocket"]
    lines, rc, err = run_cli("classify", "--model", d, "--labels", ",".join(labels), "--template", "a photo of a {}.",
                             "--format", "json", "--no-cache", "--quiet", *files)
    assert rc == 0, err
    pipe = zeroshot.pipeline(model=str(d), label_cache=False)
    got = pipe([str(f) for f in files], candidate_labels=labels, hypothesis_template="a photo of a {}.")
    assert [l["image"] for l in lines] == [str(f) for f in files]
    for line, g in zip(lines, got):
        same_as_cli([(r["label"], r["score"]) for r in line["result"]], [(r["label"], r["score"]) for r in g])
