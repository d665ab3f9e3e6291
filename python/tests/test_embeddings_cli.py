"""The C++ CLI over zeroshot.inference's output: `zeroshot index-embeddings`, `search --embeddings`, `serve
--embeddings`, against the Python package's zeroshot.embeddings.search and an exact numpy search of the same rows.

Needs the built CLI ($ZEROSHOT_CLI; scripts/test-python.sh sets it), pyarrow and FAISS's Python module (the index
step runs in Python, with this interpreter: --python sys.executable).
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import IMAGES, clip_dir

if os.environ.get("ZEROSHOT_REQUIRE_INFERENCE") == "1":
    import faiss  # noqa: F401
    import pyarrow.parquet as pq
else:
    pytest.importorskip("faiss")
    pq = pytest.importorskip("pyarrow.parquet")

from zeroshot import embeddings as emb_mod
from zeroshot import inference as inf

MODEL = str(clip_dir("clip-tiny-quickgelu"))
NAMES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "gray.jpg", "green_palette.png", "lossy.webp",
         "progressive.jpg", "wide.png"]
CLI = os.environ.get("ZEROSHOT_CLI", "")
pytestmark = pytest.mark.skipif(not CLI or not os.path.exists(CLI),
                                reason="no ZEROSHOT_CLI (scripts/test-python.sh sets it)")


def cli(*args, ok=True):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def one_line_error(r, *needles):
    """Exit 2 (the CLI's error code) and one stderr line that holds every needle."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def index(out, *extra, ok=True):
    return cli("index-embeddings", out, "--python", sys.executable, *extra, ok=ok)


def search(out, *query, k=5, ok=True):
    r = cli("search", "--embeddings", out, *query, "-k", k, "--format", "json", "-q", ok=ok)
    return [json.loads(line) for line in r.stdout.splitlines()] if ok else r


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """An output of 9 images with captions in 3 partitions; its rows as float32 and its metadata, in index order."""
    tmp = tmp_path_factory.mktemp("emb")
    src = tmp / "photos"
    src.mkdir()
    for i, n in enumerate(NAMES):
        shutil.copy(IMAGES / n, src / n)
        (src / n).with_suffix(".txt").write_text(f"caption {i}: {n.split('.')[0]}")
    out = tmp / "out"
    inf.inference(str(src), str(out), MODEL, shard_size=3, captions=True, progress=False)
    x, meta = emb_mod.load_embeddings(str(out))[0], []
    for f in sorted(out.glob("metadata/metadata_*.parquet")):
        meta += pq.read_table(f).to_pylist()
    return out, x, meta


def exact(x, meta, model, text, k):
    q = model.embed_texts([text]).astype(np.float32)[0]
    q /= np.linalg.norm(q)
    s = x @ q
    top = np.argsort(-s, kind="stable")[:k]
    return [meta[i]["image_path"] for i in top], s[top]


def test_index_search_and_serve_match_python_and_numpy(embedded, tmp_path):
    import zeroshot

    out, x, meta = embedded
    model = zeroshot.Model(MODEL)
    queries = ["a photo of a cat", "a cup of coffee", meta[4]["caption"]]
    for extra, kind in (((), "Flat"), (("--exact-below", "0"), "IVF1,Flat")):
        r = index(out, *extra)
        summary = json.loads(r.stdout)
        assert summary["type"] == kind and summary["vectors"] == len(NAMES), summary
        assert kind in r.stderr  # the CLI opened what it built
        for text in queries:
            got = search(out, text)
            want = emb_mod.search(str(out), text, k=5)
            paths, scores = exact(x, meta, model, text, 5)
            assert [g["path"] for g in got] == [w["image_path"] for w in want] == paths
            np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in want], atol=1e-5, rtol=0)
            np.testing.assert_allclose([g["score"] for g in got], scores, atol=1e-5, rtol=0)
            by_path = {m["image_path"]: m["caption"] for m in meta}
            assert [g["caption"] for g in got] == [by_path[g["path"]] for g in got]
    # Each image's own embedding finds the image at the top (an image query: the CLI embeds the file), with the
    # cosine of a row to itself (float16 rounding); two fixture photos are near-copies, so it may share the top.
    for m in meta:
        got = search(out, m["image_path"], k=3)
        own = [g for g in got if g["path"] == m["image_path"]]
        assert own and own[0]["score"] > 1 - 1e-3 and got[0]["score"] - own[0]["score"] < 1e-3, (m, got)

    # The server's /v1/search answers as the CLI does.
    p = subprocess.Popen([CLI, "serve", "--embeddings", str(out), "--port", "0", "-q"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert "serving" in line, (line, p.stderr.read() if p.poll() is not None else "")
        url = line.strip().split(" on ")[1].rstrip("/")
        for text in queries:
            body = json.dumps({"query": text, "top_k": 5}).encode()
            req = urllib.request.Request(url + "/v1/search", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                res = json.loads(resp.read())
            got = search(out, text)
            assert res["candidates"] == len(NAMES)
            assert [(r["path"], r["caption"]) for r in res["results"]] == [(g["path"], g["caption"]) for g in got]
            np.testing.assert_allclose([r["score"] for r in res["results"]], [g["score"] for g in got], atol=1e-6)
        # Thumbnails are the photo index's (its paths are this machine's): refused, with the reason.
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "/v1/thumbnail/0", timeout=60)
        assert e.value.code == 404 and "not an embedding folder" in json.loads(e.value.read())["error"]
    finally:
        p.terminate()
        p.wait(timeout=60)

    # Another model than the one that embedded the folder: refused, by the CLI and the server.
    other = str(clip_dir("clip-tiny-gelu-f16"))
    one_line_error(cli("search", "--embeddings", out, "--model", other, "cat", ok=False), "another model")
    one_line_error(cli("serve", "--embeddings", out, "--model", other, "--port", "0", ok=False), "another model")


def test_bad_folders_are_one_line_errors(embedded, tmp_path):
    src, _, _ = embedded
    out = tmp_path / "out"
    shutil.copytree(src, out)
    for f in out.glob("index*"):
        f.unlink()
    one_line_error(search(tmp_path / "missing", "cat", ok=False), "missing: no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(index(tmp_path / "empty", ok=False), "empty: no img_emb")
    one_line_error(search(out, "cat", ok=False), "index.faiss: no index")

    # Partitions that are not float16/float32 (rows, dim) matrices, or are cut short.
    part = out / "img_emb" / "img_emb_1.npy"
    good = part.read_bytes()
    for bad, needle in ((np.zeros((3, 32), np.float64), "dtype '<f8'"), (np.zeros(96, np.float32), "2-D"),
                        (np.zeros((3, 32), np.float32).T, "Fortran")):
        np.save(part, np.asfortranarray(bad) if needle == "Fortran" else bad)
        one_line_error(index(out, ok=False), str(part), needle)
    part.write_bytes(good[:-10])
    one_line_error(index(out, ok=False), str(part), "truncated")
    part.write_bytes(good)

    # Metadata rows that do not match the embeddings' (the Python step says so, in one line).
    meta = out / "metadata" / "metadata_1.parquet"
    t = pq.read_table(meta)
    pq.write_table(t.slice(0, 2), meta)
    one_line_error(index(out, ok=False), "metadata_1.parquet", "2 metadata rows")
    pq.write_table(t, meta)

    # Built, then a partition added, rewritten or removed: search refuses until it is built again.
    index(out)
    assert search(out, "cat")
    extra = out / "img_emb" / "img_emb_3.npy"
    shutil.copy(part, extra)
    one_line_error(search(out, "cat", ok=False), "img_emb_3.npy: not in the index", "index-embeddings again")
    extra.unlink()
    np.save(part, np.load(part)[:2])
    one_line_error(search(out, "cat", ok=False), "img_emb_1.npy: 2 rows, 3 when the index was built")
    part.write_bytes(good)
    (out / "index.metadata.sqlite").unlink()
    one_line_error(search(out, "cat", ok=False), "index.metadata.sqlite: no metadata store")
    index(out)
    (out / "index.faiss").write_bytes(b"not an index")
    one_line_error(search(out, "cat", ok=False), "index.faiss: not a FAISS index")
    # Debian's Python (no pyarrow there, nor the package unless installed): the error names what to install.
    one_line_error(cli("index-embeddings", out, "--python", "/usr/bin/python3", ok=False), "cannot import", "install")
    one_line_error(cli("index-embeddings", out, "--python", tmp_path / "no-python", ok=False), "cannot run it")
