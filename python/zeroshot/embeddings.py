"""Index and search what ``zeroshot.inference`` (or clip-retrieval) embedded: a FAISS index over ``OUT/img_emb``.

    python -m zeroshot.embeddings index OUT                 # writes OUT/index.faiss
    python -m zeroshot.embeddings search OUT "a red car"    # best first: image_path and cosine

The index is a plain FAISS index file (``faiss.write_index``), inner product over the L2-normalized rows (cosine),
with ids = the row's position in the concatenation of the partitions in order: what autofaiss writes and what
clip-retrieval's back end loads next to the same ``metadata/*.parquet``. FAISS (Debian's python3-faiss) does the
indexing; this module only chooses the index type, as autofaiss does, by size and a memory budget:

- up to ``exact_below`` vectors (default 100,000): ``Flat`` (exact);
- more, when the float32 vectors fit the budget: ``IVF{nlist},Flat``;
- otherwise ``IVF{nlist},PQ{m}`` with the largest ``m`` (bytes per vector) whose codes fit the budget.

Beside the index, ``index.metadata.sqlite`` (``metadata_store_path``): the metadata rows in index order (id = row
position), the partitions (file, rows) the index was built from, and the model that embedded them. It is what the C++
CLI reads (``zeroshot search --embeddings`` / ``serve --embeddings``): Debian 12 has no C++ Parquet reader, so Parquet
is read here, once, at index time (as clip-retrieval's back end converts the parquet into its own store); SQLite
because the CLI already links it and a row is found by id without loading the rest.

``nlist`` is about 4 * sqrt(n) (the usual FAISS guideline), at most n / 39 (FAISS wants >= 39 training points per
list); searches probe ``nprobe`` lists (default: nlist / 16, at least 1; pass nprobe=nlist for exact IVF results).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._zeroshot import Error

INDEX_FILE = "index.faiss"
METADATA_COLUMNS = ("image_path", "caption", "width", "height")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise Error("indexing embeddings needs FAISS's Python module (Debian python3-faiss, or pip faiss-cpu)") from None
    return faiss


def _partitions(out: str, kind: str = "img") -> List[str]:
    files = glob.glob(os.path.join(out, f"{kind}_emb", f"{kind}_emb_*.npy"))
    if not files:
        raise Error(f"{out}: no {kind}_emb/{kind}_emb_*.npy partitions (not an embedding output folder)")

    def number(f: str) -> int:
        m = re.search(r"_(\d+)\.npy$", f)
        return int(m.group(1)) if m else -1

    return sorted(files, key=number)


def load_embeddings(out: str, kind: str = "img") -> Tuple[np.ndarray, List[int]]:
    """All rows as float32 (n, d), and the first row of each partition (for mapping ids back to metadata)."""
    mats, starts, n, dim = [], [], 0, None
    for f in _partitions(out, kind):
        try:
            a = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise Error(f"{f}: not a readable .npy file ({e})") from None
        if a.ndim != 2 or (dim is not None and a.shape[1] != dim):
            raise Error(f"{f}: shape {a.shape} does not match the other partitions (n, {dim})")
        if a.dtype not in (np.float16, np.float32):
            raise Error(f"{f}: dtype {a.dtype}, expected float16 or float32")
        dim = a.shape[1]
        starts.append(n)
        n += a.shape[0]
        mats.append(np.asarray(a, dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(mats)), starts


def _parse_bytes(s: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)B?\s*", s.upper())
    if not m:
        raise ValueError(f"not a size: {s!r} (e.g. 512M, 4G)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " "))


def choose_index(n: int, d: int, memory_budget: int, exact_below: int = 100_000) -> str:
    """The FAISS index factory string for n vectors of dimension d within memory_budget bytes."""
    if n <= exact_below:
        return "Flat"
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    if n * d * 4 <= memory_budget:
        return f"IVF{nlist},Flat"
    m = d
    while m > 1 and (n * m > memory_budget or d % m):
        m -= 1
    return f"IVF{nlist},PQ{m}"


def build_index(
    out: str,
    index_path: Optional[str] = None,
    *,
    memory_budget: str = "4G",
    exact_below: int = 100_000,
    train_size: int = 100_000,
    metadata_store: bool = True,
) -> Dict[str, Any]:
    """Build ``index_path`` (default OUT/index.faiss) from OUT/img_emb, and its metadata store (for the C++ CLI;
    needs pyarrow); returns a summary."""
    faiss = _faiss()
    t0 = time.perf_counter()
    x, _ = load_embeddings(out)
    n, d = x.shape
    if n == 0:
        raise Error(f"{out}: the partitions hold no rows")
    factory = choose_index(n, d, _parse_bytes(memory_budget), exact_below)
    path = index_path or os.path.join(out, INDEX_FILE)
    # The metadata first: a parquet that does not match its npy fails before the (long) index build.
    meta = write_metadata_store(out, path, factory) if metadata_store else None
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        rng = np.random.default_rng(0)  # a fixed sample: the same folder gives the same index
        sample = x if n <= train_size else x[np.sort(rng.choice(n, train_size, replace=False))]
        index.train(sample)
    index.add(x)
    tmp = path + ".tmp"
    faiss.write_index(index, tmp)
    os.replace(tmp, path)
    summary = {"index": path, "type": factory, "vectors": n, "dim": d, "bytes": os.path.getsize(path)}
    if meta:
        summary["metadata"] = meta
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary


def metadata_store_path(index_path: str) -> str:
    """Where the metadata store of ``index_path`` lives: OUT/index.faiss -> OUT/index.metadata.sqlite."""
    stem = index_path[: -len(".faiss")] if index_path.endswith(".faiss") else index_path
    return stem + ".metadata.sqlite"


def write_metadata_store(out: str, index_path: str, index_type: str = "") -> str:
    """Writes ``metadata_store_path(index_path)``: every metadata row in index order, the partitions and the model.

    Checks that each partition's parquet has as many rows as its npy (rows in the same order is the layout's rule)."""
    import sqlite3

    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise Error("reading the metadata/*.parquet files needs pyarrow (pip install pyarrow)") from None
    plan_path = os.path.join(out, "zeroshot-inference.json")
    plan: Dict[str, Any] = {}
    if os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as f:
            plan = json.load(f)
    path = metadata_store_path(index_path)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    db = sqlite3.connect(tmp)
    try:
        db.executescript(
            "CREATE TABLE info(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE partitions(number INTEGER PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL);"
            "CREATE TABLE rows(id INTEGER PRIMARY KEY, image_path TEXT, caption TEXT, width INTEGER, height INTEGER);")
        n = 0
        for p, f in enumerate(_partitions(out)):
            rows = int(np.load(f, mmap_mode="r").shape[0])
            name = os.path.basename(f).replace("img_emb_", "metadata_").replace(".npy", ".parquet")
            mpath = os.path.join(out, "metadata", name)
            try:
                t = pq.read_table(mpath)
            except (OSError, ValueError) as e:
                raise Error(f"{mpath}: unreadable metadata ({e})") from None
            if t.num_rows != rows:
                raise Error(f"{mpath}: {t.num_rows} metadata rows, {os.path.basename(f)} has {rows} embeddings")
            cols = {c: t.column(c).to_pylist() if c in t.column_names else [None] * rows for c in METADATA_COLUMNS}
            db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?)",
                           ((n + i, *(cols[c][i] for c in METADATA_COLUMNS)) for i in range(rows)))
            db.execute("INSERT INTO partitions VALUES (?, ?, ?)", (p, os.path.basename(f), rows))
            n += rows
        info = {"format": "zeroshot-embeddings-metadata 1", "rows": str(n), "index": os.path.basename(index_path),
                "index_type": index_type, "model": str(plan.get("model", "")),
                "model_fingerprint": str(plan.get("model_fingerprint", "")),
                "precision": str(plan.get("precision", ""))}
        db.executemany("INSERT INTO info VALUES (?, ?)", info.items())
        db.commit()
    finally:
        db.close()
    os.replace(tmp, path)
    return path


def _metadata_rows(out: str, partition_files: List[str], wanted: Dict[int, List[int]]) -> Dict[Tuple[int, int], Dict]:
    import pyarrow.parquet as pq

    rows: Dict[Tuple[int, int], Dict] = {}
    for p, idx in wanted.items():
        name = os.path.basename(partition_files[p]).replace("img_emb_", "metadata_").replace(".npy", ".parquet")
        path = os.path.join(out, "metadata", name)
        try:
            t = pq.read_table(path)
        except (OSError, ValueError) as e:
            raise Error(f"{path}: unreadable metadata ({e})") from None
        cols = [c for c in ("image_path", "caption", "width", "height") if c in t.column_names]
        for i in idx:
            rows[(p, i)] = {c: t.column(c)[i].as_py() for c in cols}
    return rows


def search(
    out: str,
    query: str,
    *,
    k: int = 10,
    model: Any = None,
    index_path: Optional[str] = None,
    nprobe: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """The ``k`` best rows for a text query, best first: {"image_path", "score" (cosine), ...metadata}.

    ``model``: a zeroshot.Model or a name; default: the model recorded in OUT/zeroshot-inference.json (its
    fingerprint is checked, so a query is never embedded by another model than the images were). Without an index
    file, an exact search over the partitions."""
    from ._engine import Model

    plan_path = os.path.join(out, "zeroshot-inference.json")
    plan = None
    if os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as f:
            plan = json.load(f)
    if model is None:
        if plan is None:
            raise Error(f"{out}: no zeroshot-inference.json: pass the model that made the embeddings")
        model = Model(plan["model"], precision=plan.get("precision", "f32"))
    elif not isinstance(model, Model):
        model = Model(model)
    if plan is not None and plan.get("model_fingerprint") not in (None, model.fingerprint):
        raise Error(f"{out}: was embedded with another model ({plan.get('model')}) than {model.name}")
    q = model.embed_texts([query]).astype(np.float32)
    q /= max(float(np.linalg.norm(q)), 1e-12)
    files = _partitions(out)
    path = index_path or os.path.join(out, INDEX_FILE)
    if os.path.exists(path):
        faiss = _faiss()
        try:
            index = faiss.read_index(path)
        except RuntimeError as e:
            raise Error(f"{path}: not a FAISS index ({str(e).splitlines()[0]})") from None
        if index.d != q.shape[1]:
            raise Error(f"{path}: index of dimension {index.d}, the model embeds {q.shape[1]}")
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.nprobe = nprobe or max(1, ivf.nlist // 16)
        scores, ids = index.search(q, k)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        _, starts = _shapes(files)
    else:
        x, starts = load_embeddings(out)
        s = x @ q[0]
        top = np.argsort(-s, kind="stable")[:k]
        hits = [(int(i), float(s[i])) for i in top]
    wanted: Dict[int, List[int]] = {}
    located = []
    for i, score in hits:
        p = int(np.searchsorted(starts, i, side="right")) - 1
        wanted.setdefault(p, []).append(i - starts[p])
        located.append((p, i - starts[p], score))
    meta = _metadata_rows(out, files, wanted)
    return [{**meta[(p, r)], "score": score} for p, r, score in located]


def _shapes(files: List[str]) -> Tuple[int, List[int]]:
    starts, n = [], 0
    for f in files:
        starts.append(n)
        n += np.load(f, mmap_mode="r").shape[0]
    return n, starts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zeroshot.embeddings",
                                description="Index and search an embedding folder (zeroshot.inference's output).")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("index", help="build a FAISS index (OUT/index.faiss) from OUT/img_emb")
    pi.add_argument("output")
    pi.add_argument("--index", help="where to write it (default OUT/index.faiss)")
    pi.add_argument("--memory-budget", default="4G", help="memory the index may use (e.g. 512M, 4G)")
    pi.add_argument("--exact-below", type=int, default=100_000, help="an exact (Flat) index up to this many vectors")
    pi.add_argument("--no-metadata-store", action="store_true",
                    help="skip index.metadata.sqlite (the metadata rows for zeroshot search/serve --embeddings)")
    ps = sub.add_parser("search", help="the best images for a text query")
    ps.add_argument("output")
    ps.add_argument("query")
    ps.add_argument("-n", "--top", type=int, default=10)
    ps.add_argument("--model", help="default: the model recorded in OUT")
    ps.add_argument("--index", help="default OUT/index.faiss when it exists, else an exact search")
    ps.add_argument("--nprobe", type=int, help="IVF lists probed (default nlist/16)")
    ps.add_argument("--json", action="store_true", help="one JSON object per line")
    a = p.parse_args(argv)
    try:
        if a.command == "index":
            print(json.dumps(build_index(a.output, a.index, memory_budget=a.memory_budget, exact_below=a.exact_below,
                                         metadata_store=not a.no_metadata_store)))
        else:
            for r in search(a.output, a.query, k=a.top, model=a.model, index_path=a.index, nprobe=a.nprobe):
                print(json.dumps(r, ensure_ascii=False) if a.json else f"{r['score']:.4f}\t{r['image_path']}")
    except (Error, ValueError) as e:
        print(f"zeroshot.embeddings: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from zeroshot.embeddings import main as _main

    sys.exit(_main())
