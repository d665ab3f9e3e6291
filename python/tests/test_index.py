"""The photo index: indexing a folder and searching it by text, image and weighted terms gives the CLI's results on
the same database (and the CLI reads an index made from Python)."""

import pathlib

import pytest

import zeroshot
from conftest import CLIP_MODELS, IMAGES, clip_dir, run_cli, same_as_cli


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    db = tmp_path_factory.mktemp("index") / "photos.db"
    idx = zeroshot.Index(db, str(clip_dir(CLIP_MODELS[0])), create=True)
    report = idx.update([IMAGES])
    n_bad = len([p for p in IMAGES.iterdir() if p.name.startswith("bad_")])
    assert report["embedded"] == report["files"] - n_bad > 0
    assert sorted(p for p, _ in report["failures"]) == sorted(str(p) for p in IMAGES.iterdir() if p.name.startswith("bad_"))
    assert len(idx) == report["embedded"]
    again = idx.update([IMAGES])
    assert again["embedded"] == 0 and again["unchanged"] == report["embedded"]
    return idx


def cli_search(idx, *query, k=5):
    lines, rc, err = run_cli("search", "--model", idx.model.name, "--db", idx.path, "--no-index", "-d", IMAGES,
                             "--format", "json", "-k", k, "--quiet", *query)
    assert rc == 0, err
    return [(l["path"], l["score"]) for l in lines]


def ours(hits):
    return [(h["path"], h["score"]) for h in hits]


def test_text_image_and_weighted_search_match_the_cli(index):
    hits = index.search("a cat", top_k=5)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    same_as_cli(cli_search(index, "a", "cat"), ours(hits))
    img = str(IMAGES / "chelsea.png")
    hits = index.search(image=img, top_k=5, folders=[IMAGES])
    assert hits[0]["path"] == img and hits[0]["score"] == pytest.approx(1, abs=1e-5)
    same_as_cli(cli_search(index, "--image", img), ours(hits))
    q = f"2:a dog + {img} - 0.5:coffee"
    same_as_cli(cli_search(index, *q.split()), ours(index.search(q, top_k=5)))
    explicit = index.search(terms=[(2, "a dog"), (1, pathlib.Path(img)), (-0.5, "coffee")], top_k=5)
    assert ours(explicit) == ours(index.search(q, top_k=5))


def test_open_without_naming_the_model_and_errors(index, tmp_path):
    same = zeroshot.Index(index.path)
    assert same.model.fingerprint == index.model.fingerprint and len(same) == len(index)
    with pytest.raises(zeroshot.Error, match="another model|--reindex"):
        zeroshot.Index(index.path, str(clip_dir(CLIP_MODELS[1])))
    with pytest.raises(zeroshot.Error):
        zeroshot.Index(tmp_path / "missing.db", index.model)
    (tmp_path / "junk.db").write_bytes(b"not sqlite" * 100)
    with pytest.raises(zeroshot.Error, match="junk.db"):
        zeroshot.Index(tmp_path / "junk.db", index.model)
    with pytest.raises(zeroshot.Error, match="query"):
        index.search("cat +")
    with pytest.raises(ValueError):
        index.search()
    with pytest.raises(TypeError):
        index.search(terms=[(1, 3)])
