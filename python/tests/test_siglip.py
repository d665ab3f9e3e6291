"""SigLIP through zeroshot.pipeline: transformers' own pipeline output (sigmoid scores per label, not renormalized)
on the random-weight SiglipModel that transformers saved (tests/reference/make_siglip.py, written by the C++ test
run into build/reference-fixtures; scripts/test.sh runs that before this suite)."""

import json
from pathlib import Path

import pytest

import zeroshot
from conftest import IMAGES, REPO

SIGLIP = REPO / "build" / "reference-fixtures" / "siglip" / "siglip-tiny"


@pytest.fixture(scope="module")
def siglip():
    if not (SIGLIP / "expected.json").is_file():
        pytest.skip(f"{SIGLIP}: no SigLIP reference fixture (made by the C++ tests' reference_fixtures step)")
    return json.loads((SIGLIP / "expected.json").read_text())


def test_pipeline_gives_the_transformers_pipelines_sigmoid_scores(siglip):
    clf = zeroshot.pipeline("zero-shot-image-classification", model=str(SIGLIP))
    assert clf.model.model_type == "siglip"
    assert siglip["zero_shot"], "no pipeline cases in the fixture"
    for case in siglip["zero_shot"]:
        got = clf(str(IMAGES / case["image"]), candidate_labels=case["labels"], hypothesis_template=case["template"])
        want = case["result"]
        assert [g["label"] for g in got] == [w["label"] for w in want], case["image"]
        for g, w in zip(got, want):
            assert abs(g["score"] - w["score"]) <= 1e-4, (case["image"], g, w)
        # Independent per label: SigLIP's scores do not sum to 1 (a softmax's would).
        assert abs(sum(g["score"] for g in got) - 1.0) > 1e-3
