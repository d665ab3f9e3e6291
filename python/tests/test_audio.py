"""Audio pipeline against the reference outputs of the shared CLAP fixtures (Hugging Face's
zero-shot-audio-classification pipeline), from paths and from numpy waveforms, and against the CLI."""

import pathlib
import wave

import numpy as np
import pytest

import zeroshot
from conftest import AUDIO, CLAP_MODELS, FIXTURES, clap_dir, expected_json, read_safetensors, run_cli, same_as_cli

TOL = 5e-4  # the audio fixtures' zero-shot tolerance (clap/README.md), as the C++ tests hold it


def assert_audio_scores(got, want, what=""):
    """Scores within TOL for every label; ranks may differ only between labels whose reference scores are that close."""
    ref = {r["label"]: r["score"] for r in want}
    assert sorted(ref) == sorted(r["label"] for r in got), what
    for k, g in enumerate(got):
        assert abs(g["score"] - ref[g["label"]]) <= TOL, (what, g, ref[g["label"]])
        if g["label"] != want[k]["label"]:
            assert abs(ref[g["label"]] - want[k]["score"]) < TOL, (what, k, g)


@pytest.fixture(scope="module", params=CLAP_MODELS)
def clap(request):
    d = clap_dir(request.param)
    return zeroshot.pipeline("zero-shot-audio-classification", model=str(d), label_cache=False), expected_json(d)


def test_every_case_from_a_path(clap):
    pipe, ex = clap
    assert pipe.model.modality == "audio" and pipe.model.sampling_rate == 48000
    n = 0
    for c in ex["zero_shot"]:
        kw = {} if c["hypothesis_template"] == "This is a sound of {}." else {"hypothesis_template": c["hypothesis_template"]}
        got = pipe(str(AUDIO / c["audio"]), candidate_labels=c["candidate_labels"], **kw)
        assert_audio_scores(got, c["result"], c["audio"])  # resampled files too: ffmpeg's own resampler
        n += 1
    assert n == len(ex["zero_shot"]) and n >= 40


def read_pcm16(path):
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getframerate() == 48000 and w.getsampwidth() == 2
        return (np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768).astype(np.float32)


@pytest.mark.parametrize("name", ["chord_3s.wav", "short_0p35s.wav", "mix_pcm16.wav", "exact_10s.wav", "stereo_3s.wav"])
def test_numpy_waveforms(clap, name):
    pipe, ex = clap
    if name == "stereo_3s.wav":  # the pipeline's own (ffmpeg) decode, stored with the fixtures
        x = read_safetensors(FIXTURES / "clap" / "frontend" / "decoded.safetensors")["waveform/" + name]
    else:
        x = read_pcm16(AUDIO / name)
    cases = [c for c in ex["zero_shot"] if c["audio"] == name]
    assert cases
    for c in cases:
        for form in (x, x.astype(np.float64)):
            got = pipe(form, candidate_labels=c["candidate_labels"], hypothesis_template=c["hypothesis_template"])
            assert_audio_scores(got, c["result"], name)
    # bytes of the file, and a list mixing the forms: a list per clip, in order.
    c = cases[0]
    kw = dict(candidate_labels=c["candidate_labels"], hypothesis_template=c["hypothesis_template"])
    for got in pipe([x, (AUDIO / name).read_bytes(), pathlib.Path(AUDIO / name)], batch_size=2, **kw):
        assert_audio_scores(got, c["result"], name)


def test_embed_audio_matches_the_reference():
    d = clap_dir(CLAP_MODELS[0])
    ex, t = expected_json(d), read_safetensors(d / "expected.safetensors")
    m = zeroshot.Model(str(d))
    rows = [i for i, a in enumerate(ex["audio"]) if a["deterministic_in_hf"]]  # resampled files too
    e = m.embed_audio([AUDIO / ex["audio"][i]["file"] for i in rows])
    want = t["audio_embeds"][rows]
    assert e.dtype == np.float32 and e.shape == want.shape
    assert np.abs(e - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("model", CLAP_MODELS)
def test_same_numbers_as_the_cli(model):
    d = clap_dir(model)
    files = [AUDIO / f for f in ("chord_3s.wav", "mix.flac", "stereo_3s.wav", "long_25s.wav", "short_0p35s.wav")]
    labels = ["dog", "rain", "siren", "a chord", "speech"]
    lines, rc, err = run_cli("classify", "--model", d, "--labels", ",".join(labels), "--format", "json",
                             "--no-cache", "--quiet", *files)
    assert rc == 0, err
    got = zeroshot.pipeline(model=str(d), label_cache=False)([str(f) for f in files], candidate_labels=labels)
    assert [l["audio"] for l in lines] == [str(f) for f in files]
    for line, g in zip(lines, got):
        same_as_cli([(r["label"], r["score"]) for r in line["result"]], [(r["label"], r["score"]) for r in g])
