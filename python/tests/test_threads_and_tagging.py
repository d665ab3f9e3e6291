"""Several Python threads sharing one model give the results of one thread (the GIL is released during every
computation); multi-label tagging and moderation give the CLI's numbers."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import zeroshot
from conftest import AUDIO, CLAP_MODELS, CLIP_MODELS, IMAGES, REPO, clap_dir, clip_dir, run_cli, same_as_cli

FILES = sorted(str(p) for p in IMAGES.iterdir() if not p.name.startswith("bad_"))


def test_threads_embedding_at_once_give_the_same_results():
    m = zeroshot.Model(str(clip_dir(CLIP_MODELS[0])), threads=2)
    want_img = m.embed_images(FILES)
    want_txt = m.embed_texts(["a dog", "a cat", "a red car"])
    pipe = zeroshot.pipeline(model=m, label_cache=False)
    want_cls = pipe(FILES, candidate_labels=["cat", "dog", "coffee"])
    start = threading.Barrier(6)

    def work(i):
        start.wait()
        out = []
        for _ in range(3):
            if i % 3 == 0:
                out.append(("img", m.embed_images(FILES[i:] + FILES[:i], batch_size=1 + i)))
            elif i % 3 == 1:
                out.append(("txt", m.embed_texts(["a dog", "a cat", "a red car"])))
            else:
                out.append(("cls", pipe(FILES, candidate_labels=["cat", "dog", "coffee"])))
        return i, out

    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(work, range(6)))
    for i, out in results:
        for kind, got in out:
            if kind == "img":
                np.testing.assert_allclose(got, np.roll(want_img, -i, axis=0), rtol=0, atol=1e-6)
            elif kind == "txt":
                np.testing.assert_array_equal(got, want_txt)
            else:
                assert got == want_cls


def test_audio_threads():
    m = zeroshot.Model(str(clap_dir(CLAP_MODELS[0])))
    files = [AUDIO / "chord_3s.wav", AUDIO / "mix.flac", AUDIO / "short_0p35s.wav"]
    want = m.embed_audio(files)
    with ThreadPoolExecutor(3) as ex:
        for got in ex.map(lambda _: m.embed_audio(files, batch_size=2), range(3)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_the_gil_is_released_while_embedding():
    # While one thread is inside the engine, another runs Python. With the GIL held it could run only before the
    # call starts and after it returns, never in the middle half of it.
    m = zeroshot.Model(str(clip_dir(CLIP_MODELS[0])), threads=1)
    span = {}

    def embed():
        span["t0"] = time.perf_counter()
        m.embed_images(FILES * 8, batch_size=1)
        span["t1"] = time.perf_counter()

    t = threading.Thread(target=embed)
    stamps = []
    t.start()
    while t.is_alive():
        time.sleep(0.001)
        stamps.append(time.perf_counter())
    t.join()
    t0, t1 = span["t0"], span["t1"]
    assert t1 - t0 > 0.05
    middle = [s for s in stamps if t0 + 0.25 * (t1 - t0) <= s <= t0 + 0.75 * (t1 - t0)]
    assert len(middle) >= 5, (len(middle), len(stamps), t1 - t0)


def test_multi_label_matches_the_cli():
    d = clip_dir(CLIP_MODELS[0])
    labels = ["a dog", "a cat", "grass", "a car"]
    lines, rc, err = run_cli("classify", "--model", d, "--multi-label", "--labels", ",".join(labels),
                             "--threshold", "0.55", "--threshold", "a car=0.8", "--format", "json", "--no-cache",
                             "--quiet", *FILES[:6])
    assert rc == 0, err
    tagger = zeroshot.MultiLabelClassifier(zeroshot.Model(str(d)), labels, threshold=0.55, thresholds={"a car": 0.8},
                                           cache_dir=False)
    assert tagger.thresholds == pytest.approx([0.55, 0.55, 0.55, 0.8])
    for line, got in zip(lines, tagger.tag_images(FILES[:6])):
        key = lambda r: (r["label"], np.float32(r["threshold"]), r["flagged"])  # noqa: E731
        same_as_cli([(key(r), r["score"]) for r in line["result"]], [(key(g), g["score"]) for g in got])


def test_moderator_matches_the_cli(tmp_path):
    d = clip_dir(CLIP_MODELS[0])
    policy = REPO / "examples" / "moderation-policy.toml"
    lines, rc, err = run_cli("moderate", "--model", d, "--policy", policy, "--format", "json", *FILES[:5])
    assert rc in (0, 1), err
    mod = zeroshot.Moderator(zeroshot.Model(str(d)), policy, cache_dir=tmp_path)
    got = mod.moderate_images(FILES[:5])
    assert mod.categories == list(lines[0]["scores"])
    for line, g in zip(lines, got):
        same_as_cli(list(line["scores"].items()), list(g["scores"].items()))
        assert [f["category"] for f in line["flagged"]] == [f["category"] for f in g["flagged"]]
    # the policy as text, and a malformed one
    same = zeroshot.Moderator(mod.model, "inline.toml", policy=policy.read_text(), cache_dir=False)
    assert same.moderate_images(FILES[:1]) == got[:1]
    with pytest.raises(zeroshot.Error, match=r"^bad\.toml:\d+: "):
        zeroshot.Moderator(mod.model, "bad.toml", policy="[[category]]\nname = 3\n", cache_dir=False)
