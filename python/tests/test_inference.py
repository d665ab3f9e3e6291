"""python -m zeroshot.inference: clip-retrieval's layout, locally and on a real Dask cluster on 127.0.0.1.

The cluster (a scheduler and two workers, started from this interpreter so they import the same zeroshot) is
started by these tests and stopped after them. scripts/test-python.sh sets ZEROSHOT_REQUIRE_INFERENCE=1, so a
missing Dask or pyarrow fails there instead of skipping.
"""

import glob
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import IMAGES, clip_dir

if os.environ.get("ZEROSHOT_REQUIRE_INFERENCE") == "1":
    import distributed  # noqa: F401
    import pyarrow.parquet as pq
else:
    pytest.importorskip("distributed")
    pq = pytest.importorskip("pyarrow.parquet")

import zeroshot
from zeroshot import inference as inf

MODEL = str(clip_dir("clip-tiny-quickgelu"))
GOOD = ["astronaut.png", "camera.png", "chelsea.png", "cmyk.jpg", "coffee.png", "exif_orientation6.jpg",
        "gray.jpg", "green_palette.png", "lossy.webp", "no_time_for_that_tiny.gif", "progressive.jpg", "wide.png"]
BAD = ["bad_truncated.jpg", "bad_not_an_image.jpg"]
F16_TOL = 1e-3  # float16 rounding of unit-norm rows (half-ulp <= 2**-12 for |x| < 1) plus batch-order float noise


def _folder(tmp_path, names=GOOD + BAD, captions=False):
    d = tmp_path / "photos"
    (d / "nested").mkdir(parents=True)
    for i, n in enumerate(names):
        dst = (d / "nested" / n) if i % 3 == 0 else (d / n)
        shutil.copy(IMAGES / n, dst)
        if captions:
            dst.with_suffix(".txt").write_text(f"a photo number {i}, {n}")
    return d


def _read(out, captions=False):
    """(image embeddings, text embeddings or None, metadata rows) of an output, in partition order."""
    img = [np.load(f) for f in sorted(glob.glob(f"{out}/img_emb/img_emb_*.npy"))]
    meta = [pq.read_table(f).to_pylist() for f in sorted(glob.glob(f"{out}/metadata/metadata_*.parquet"))]
    assert len(img) == len(meta)
    for a, m in zip(img, meta):
        assert a.shape[0] == len(m)
    text = None
    if captions:
        text = np.concatenate([np.load(f) for f in sorted(glob.glob(f"{out}/text_emb/text_emb_*.npy"))])
    return np.concatenate(img), text, [r for m in meta for r in m]


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def model():
    return zeroshot.Model(MODEL)


def test_files_layout_rows_and_errors(tmp_path, model):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    s = inf.inference(str(src), str(out), MODEL, shard_size=4, progress=False)
    assert s["shards"] == 4 and s["shards_embedded"] == 4 and s["images"] == len(GOOD) and s["errors"] == len(BAD)
    # clip-retrieval's names: 4 partitions -> one digit; float16 as it writes them.
    assert sorted(os.listdir(out / "img_emb")) == [f"img_emb_{i}.npy" for i in range(4)]
    emb, _, meta = _read(out)
    assert emb.dtype == np.float16
    paths = [r["image_path"] for r in meta]
    assert sorted(os.path.basename(p) for p in paths) == sorted(GOOD)  # every readable input exactly once
    # Each row is the engine's embedding of that file, L2-normalized, within float16 rounding.
    want = _unit(model.embed_images(paths))
    np.testing.assert_allclose(emb.astype(np.float32), want, atol=F16_TOL, rtol=0)
    # Width and height from the file's header.
    r = next(r for r in meta if r["image_path"].endswith("astronaut.png"))
    from PIL import Image

    with Image.open(IMAGES / "astronaut.png") as im:
        assert (r["width"], r["height"]) == im.size
    errs = [e for f in sorted(glob.glob(f"{out}/errors/*.json")) for e in json.loads(Path(f).read_text())]
    assert sorted(os.path.basename(e["input"]) for e in errs) == sorted(BAD)
    assert all(e["error"] for e in errs)


def test_matches_the_cli_embed(tmp_path):
    cli = os.environ.get("ZEROSHOT_CLI")
    if not cli or not os.path.exists(cli):
        pytest.skip("no ZEROSHOT_CLI (scripts/test-python.sh sets it)")
    src = _folder(tmp_path, GOOD[:5])
    out = tmp_path / "out"
    inf.inference(str(src), str(out), MODEL, shard_size=2, progress=False, embedding_dtype="float32")
    emb, _, meta = _read(out)
    args = [cli, "embed", "--model", MODEL, "--normalize", "--format", "json", "-q"]
    for r in meta:
        args += ["--image", r["image_path"]]
    lines = subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()
    want = np.array([json.loads(line)["embedding"] for line in lines], np.float32)
    np.testing.assert_allclose(emb, want, atol=1e-5, rtol=0)


def _tar(path, samples):
    kw = {"fileobj": path} if isinstance(path, io.BytesIO) else {"name": path}
    with tarfile.open(mode="w", **kw) as tf:
        for key, files in samples:
            for ext, data in files.items():
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))


def test_webdataset_with_captions(tmp_path, model):
    shards = tmp_path / "wds"
    shards.mkdir()
    img = {n: (IMAGES / n).read_bytes() for n in GOOD}
    _tar(shards / "00000.tar", [
        ("s/a", {"jpg": img["cmyk.jpg"], "txt": "a cmyk photo".encode()}),
        ("s/b", {"png": img["astronaut.png"], "txt": "an astronaut, in [brackets]".encode()}),
        ("s/c", {"jpg": (IMAGES / "bad_truncated.jpg").read_bytes(), "txt": b"broken"}),  # unreadable image
        ("s/d", {"png": img["camera.png"]}),  # no caption: left out with --captions (as clip-retrieval)
    ])
    _tar(shards / "00001.tar", [("e", {"webp": img["lossy.webp"], "txt": "a lossy photo".encode()})])
    # A truncated archive: the samples before the damage are kept, the damage is reported.
    good = io.BytesIO()
    _tar(good, [("f", {"png": img["coffee.png"], "txt": b"coffee"}), ("g", {"png": img["chelsea.png"], "txt": b"cat"})])
    f_end = 512 + -(-len(img["coffee.png"]) // 512) * 512 + 1024  # f.png and f.txt, headers and padded data
    (shards / "00002.tar").write_bytes(good.getvalue()[: f_end + 300])  # cut inside g.png's header
    out = tmp_path / "out"
    s = inf.inference(str(shards), str(out), MODEL, input_format="webdataset", captions=True, progress=False)
    assert s["shards"] == 3
    emb, text, meta = _read(out, captions=True)
    assert [r["image_path"] for r in meta] == ["s/a", "s/b", "e", "f"]
    assert [r["caption"] for r in meta] == ["a cmyk photo", "an astronaut, in [brackets]", "a lossy photo", "coffee"]
    np.testing.assert_allclose(text.astype(np.float32), _unit(model.embed_texts([r["caption"] for r in meta])),
                               atol=F16_TOL, rtol=0)
    want = _unit(model.embed_images([img["cmyk.jpg"], img["astronaut.png"], img["lossy.webp"], img["coffee.png"]]))
    np.testing.assert_allclose(emb.astype(np.float32), want, atol=F16_TOL, rtol=0)
    errs = [e for f in sorted(glob.glob(f"{out}/errors/*.json")) for e in json.loads(Path(f).read_text())]
    text_of = " | ".join(e["input"] + ": " + e["error"] for e in errs)
    assert "00000.tar:s/c" in text_of and "00000.tar:s/d" in text_of and "00002.tar" in text_of, text_of


def test_resume_and_refusals(tmp_path):
    src = _folder(tmp_path, GOOD[:9])
    out = tmp_path / "out"
    inf.inference(str(src), str(out), MODEL, shard_size=2, progress=False)
    first = _read(out)
    # A shard as a killed worker leaves it: embeddings renamed, metadata not yet, a temporary file behind.
    os.unlink(out / "metadata" / "metadata_2.parquet")
    (out / "metadata" / ".metadata_2.parquet.tmp-dead").write_bytes(b"partial")
    mtime = os.path.getmtime(out / "img_emb" / "img_emb_0.npy")
    s = inf.inference(str(src), str(out), MODEL, shard_size=2, progress=False)
    assert (s["shards_embedded"], s["shards_skipped"]) == (1, 4)
    assert os.path.getmtime(out / "img_emb" / "img_emb_0.npy") == mtime
    again = _read(out)
    np.testing.assert_array_equal(again[0], first[0])
    assert again[2] == first[2]
    assert not glob.glob(f"{out}/*/.*.tmp-*")
    # Refused: another model, another dtype, other inputs.
    with pytest.raises(zeroshot.Error, match="another model"):
        inf.inference(str(src), str(out), str(clip_dir("clip-tiny-gelu-f16")), shard_size=2, progress=False)
    with pytest.raises(zeroshot.Error, match="float16 embeddings, not float32"):
        inf.inference(str(src), str(out), MODEL, shard_size=2, embedding_dtype="float32", progress=False)
    with pytest.raises(zeroshot.Error, match="other inputs"):
        inf.inference(str(src), str(out), MODEL, shard_size=3, progress=False)


def test_cli_errors_are_one_line(tmp_path):
    port = _free_port()  # nothing listens there
    r = subprocess.run(
        [sys.executable, "-m", "zeroshot.inference", "--input", str(IMAGES), "--output", str(tmp_path / "o"),
         "--model", MODEL, "--distributor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
    )
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and f"tcp://127.0.0.1:{port}" in r.stderr and "scheduler" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "zeroshot.inference", "--input", str(tmp_path / "none"), "--output",
                        str(tmp_path / "o"), "--model", MODEL], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "none" in r.stderr, r.stderr


# -----------------------------------------------------------------------------------------------------------------
# A real cluster on loopback


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A Dask scheduler and two workers (no nanny, so SIGKILL ends a worker for good) on 127.0.0.1."""

    def __init__(self, tmp, env=None):
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.env = {**os.environ, **(env or {})}
        self.procs = []
        self._start(tmp, "scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                       self.address.rsplit(":", 1)[1], "--dashboard-address", ":0"])
        from distributed import Client

        c = Client(self.address, timeout=30, set_as_default=False)
        try:
            self.workers = [
                self._start(tmp, f"worker{i}", ["distributed.cli.dask_worker", self.address, "--nthreads", "1",
                                                "--no-nanny", "--host", "127.0.0.1", "--dashboard-address", ":0"])
                for i in range(2)
            ]
            c.wait_for_workers(2, timeout=60)
        finally:
            c.close()

    def _start(self, tmp, name, args):
        log = open(Path(tmp) / f"{name}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                             cwd=tmp)
        self.procs.append(p)
        if name == "scheduler":
            deadline = time.time() + 60
            host, port = "127.0.0.1", int(self.address.rsplit(":", 1)[1])
            while time.time() < deadline:
                try:
                    socket.create_connection((host, port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.stop()


def test_dask_equals_local(tmp_path, cluster):
    src = _folder(tmp_path)
    local, dask = tmp_path / "local", tmp_path / "dask"
    inf.inference(str(src), str(local), MODEL, shard_size=3, progress=False)
    s = inf.inference(str(src), str(dask), MODEL, shard_size=3, distributor="dask", scheduler=cluster.address,
                      progress=False)
    assert s["shards_embedded"] == 5 and s["images"] == len(GOOD) and s["errors"] == len(BAD)
    a, b = _read(local), _read(dask)
    np.testing.assert_allclose(a[0].astype(np.float32), b[0].astype(np.float32), atol=F16_TOL, rtol=0)
    assert a[2] == b[2]
    # The command line, through the same cluster, resumes: nothing left to do.
    r = subprocess.run([sys.executable, "-m", "zeroshot.inference", "--input", str(src), "--output", str(dask),
                        "--model", MODEL, "--shard-size", "3", "--distributor", "dask", "--scheduler",
                        cluster.address], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(r.stdout)["shards_skipped"] == 5


def test_dask_survives_a_killed_worker(tmp_path):
    # Each shard sleeps a little first (a test-only knob read on the workers), so shards are in flight when a
    # worker is killed; Dask moves its tasks to the other worker, and the output has every image exactly once.
    cluster = Cluster(tmp_path, env={"ZEROSHOT_INFERENCE_TEST_DELAY": "0.4"})
    try:
        names = GOOD * 3
        src = tmp_path / "many"
        src.mkdir()
        for i, n in enumerate(names):
            shutil.copy(IMAGES / n, src / f"{i:03d}_{n}")
        out = tmp_path / "out"
        result = {}

        def run():
            try:
                result["summary"] = inf.inference(str(src), str(out), MODEL, shard_size=2, distributor="dask",
                                                  scheduler=cluster.address, progress=False)
            except BaseException as e:  # noqa: BLE001 - reported by the assertion below
                result["error"] = e

        t = threading.Thread(target=run)
        t.start()
        deadline = time.time() + 120
        while time.time() < deadline and len(glob.glob(f"{out}/metadata/*.parquet")) < 3:
            time.sleep(0.05)
        assert len(glob.glob(f"{out}/metadata/*.parquet")) < len(names) // 2, "finished before the kill"
        os.kill(cluster.workers[0].pid, signal.SIGKILL)
        t.join(timeout=300)
        assert "error" not in result, result.get("error")
        _, _, meta = _read(out)
        assert sorted(os.path.basename(r["image_path"]) for r in meta) == sorted(os.listdir(src))
        assert not glob.glob(f"{out}/*/.*.tmp-*")
    finally:
        cluster.stop()


# -----------------------------------------------------------------------------------------------------------------
# Indexing and searching the output (zeroshot.embeddings)


def test_index_and_search_the_output(tmp_path, model):
    faiss = pytest.importorskip("faiss") if os.environ.get("ZEROSHOT_REQUIRE_INFERENCE") != "1" else __import__("faiss")
    from zeroshot import embeddings as emb_mod

    src = _folder(tmp_path)
    out = tmp_path / "out"
    inf.inference(str(src), str(out), MODEL, shard_size=5, progress=False)
    x, _, meta = _read(out)
    x = x.astype(np.float32)
    q = _unit(model.embed_texts(["a photo of a cat"]))[0]
    want = np.argsort(-(x @ q), kind="stable")[:5]

    # Exact search without an index, then through a Flat index, then an IVF one probing every list.
    for build in (None, {}, {"exact_below": 0}):
        if build is not None:
            s = emb_mod.build_index(str(out), **build)
            assert s["type"] == ("Flat" if not build else "IVF1,Flat") and s["vectors"] == len(GOOD)
            index = faiss.read_index(str(out / "index.faiss"))  # a plain FAISS file, as autofaiss writes
            assert index.ntotal == len(GOOD) and index.metric_type == faiss.METRIC_INNER_PRODUCT
        got = emb_mod.search(str(out), "a photo of a cat", k=5)
        assert [r["image_path"] for r in got] == [meta[i]["image_path"] for i in want]
        np.testing.assert_allclose([r["score"] for r in got], (x @ q)[want], atol=1e-4)

    # The choice by size and memory budget.
    assert emb_mod.choose_index(10_000, 512, 1 << 30) == "Flat"
    assert emb_mod.choose_index(1_000_000, 512, 4 << 30) == "IVF4000,Flat"
    assert emb_mod.choose_index(100_000_000, 512, 4 << 30) == "IVF40000,PQ32"

    # Bad input: a folder that is not an output, a corrupt index, a query model other than the one recorded.
    with pytest.raises(zeroshot.Error, match="no img_emb"):
        emb_mod.build_index(str(tmp_path))
    (out / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(zeroshot.Error, match="not a FAISS index"):
        emb_mod.search(str(out), "a cat")
    with pytest.raises(zeroshot.Error, match="another model"):
        emb_mod.search(str(out), "a cat", model=str(clip_dir("clip-tiny-gelu-f16")), index_path=str(tmp_path / "x"))
    r = subprocess.run([sys.executable, "-m", "zeroshot.embeddings", "search", str(out), "a cat"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "index.faiss" in r.stderr, r.stderr


def test_autofaiss_reads_the_output(tmp_path):
    # autofaiss (PyPI) in its own virtualenv (scripts/test-python.sh makes it: its faiss-cpu and fsspec pins stay
    # out of the package's venv), run on an output folder of ours: it must find every row and build an index.
    py = os.environ.get("ZEROSHOT_AUTOFAISS_PYTHON")
    if not py:
        if os.environ.get("ZEROSHOT_REQUIRE_INFERENCE") == "1":
            pytest.fail("ZEROSHOT_AUTOFAISS_PYTHON is not set (scripts/test-python.sh sets it)")
        pytest.skip("no ZEROSHOT_AUTOFAISS_PYTHON")
    src = _folder(tmp_path, GOOD)
    out = tmp_path / "out"
    inf.inference(str(src), str(out), MODEL, shard_size=5, progress=False)
    code = (
        "import sys, json, faiss\n"
        "from autofaiss import build_index\n"
        "_, infos = build_index(embeddings=sys.argv[1] + '/img_emb', index_path=sys.argv[1] + '/image.index',\n"
        "    index_infos_path=sys.argv[1] + '/infos.json', metric_type='ip', save_on_disk=True, verbose=40)\n"
        "i = faiss.read_index(sys.argv[1] + '/image.index')\n"
        "print(json.dumps({'ntotal': i.ntotal, 'd': i.d}))\n"
    )
    r = subprocess.run([py, "-c", code, str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"ntotal": len(GOOD), "d": _read(out)[0].shape[1]}
