"""Embed a whole data set into clip-retrieval's output layout, on this machine or on a Dask cluster.

    python -m zeroshot.inference --input photos/ --output out/ --model openai/clip-vit-base-patch32
    python -m zeroshot.inference --input 'shards/*.tar' --input-format webdataset --captions \\
        --output out/ --model M --distributor dask --scheduler tcp://10.0.0.1:8786

What is written (clip-retrieval's ``clip_inference`` layout, so autofaiss and clip-retrieval's back end read it):

    OUT/img_emb/img_emb_{i}.npy          L2-normalized image embeddings, float16 by default (as clip-retrieval)
    OUT/text_emb/text_emb_{i}.npy        L2-normalized caption embeddings (--captions), row for row with img_emb
    OUT/metadata/metadata_{i}.parquet    image_path, caption (--captions), width, height: row for row with img_emb
    OUT/errors/errors_{i}.json           the inputs of shard i that could not be read, and why (only when some failed)
    OUT/zeroshot-inference.json          what made the folder: model fingerprint, dtype, shard plan (refuses mixing)

``{i}`` is zero-padded to the digits of the shard count (clip-retrieval's rule). One shard = ``--shard-size`` files of
a folder or list (in sorted order), or one ``.tar`` of a webdataset. Every file of a shard is written under a
temporary name and renamed when complete, the metadata last: a shard is complete exactly when its metadata file
exists, so a killed worker never leaves a partial partition, a retried task never duplicates rows, and a second run
on the same output skips the complete shards (resume).

With ``--distributor dask`` each shard is one Dask task on an existing scheduler (Dask's own scheduling, retries and
worker-loss recovery; nothing home-made); a worker loads the model once and keeps it for its next shards. The model
(a folder or a hub id) and the inputs must be readable from every worker at the same paths.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import math
import os
import re
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._zeroshot import Error

# The image types the engine decodes (src/image); other files in a folder are not inputs.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
# Which member of a webdataset sample is its image: the first present, in this order ("jpg" is clip-retrieval's key).
WDS_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
PLAN_FILE = "zeroshot-inference.json"
EMBEDDING_DTYPES = ("float16", "float32")


@dataclass
class Shard:
    """One unit of work: a partition of the output. Plain data, pickled to the Dask workers."""

    index: int
    name: str  # zero-padded index, as in the file names
    files: List[str] = field(default_factory=list)  # input_format "files": the images of this shard
    tar: Optional[str] = None  # input_format "webdataset": the .tar of this shard


@dataclass
class Job:
    """What every shard needs to know to embed and write itself."""

    output: str
    model: str
    precision: str
    threads: int
    embedding_dtype: str
    captions: bool
    batch_size: int
    max_image_pixels: int


# ---------------------------------------------------------------------------------------------------------------
# Planning: inputs -> shards


def _list_inputs(input_: str, input_format: str) -> List[str]:
    """The input files, sorted: images (files) or .tar shards (webdataset)."""
    want = (".tar",) if input_format == "webdataset" else IMAGE_EXTENSIONS
    if os.path.isdir(input_):
        found = []
        for root, dirs, names in os.walk(input_):
            dirs.sort()
            found.extend(os.path.join(root, n) for n in names if n.lower().endswith(want))
        return sorted(found)
    if os.path.isfile(input_) and input_.endswith(".txt"):
        with open(input_, encoding="utf-8") as f:
            paths = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        return paths
    if os.path.isfile(input_):
        return [input_]
    matches = sorted(glob.glob(input_, recursive=True))
    if matches:
        return [m for m in matches if os.path.isfile(m)]
    raise Error(f"{input_}: no such folder, file list or glob pattern")


def _digits(n_shards: int) -> int:
    # clip-retrieval's rule (writer.py: int(math.log10(output_partition_count)) + 1), so file names sort the same.
    return int(math.log10(max(n_shards, 1))) + 1


def plan_shards(input_: str, input_format: str, shard_size: int) -> List[Shard]:
    paths = _list_inputs(input_, input_format)
    if not paths:
        kind = ".tar shards" if input_format == "webdataset" else "images (" + " ".join(IMAGE_EXTENSIONS) + ")"
        raise Error(f"{input_}: no {kind} found")
    if input_format == "webdataset":
        groups: List[List[str]] = [[p] for p in paths]
    else:
        groups = [paths[i : i + shard_size] for i in range(0, len(paths), shard_size)]
    d = _digits(len(groups))
    shards = []
    for i, g in enumerate(groups):
        s = Shard(index=i, name=str(i).zfill(d))
        if input_format == "webdataset":
            s.tar = g[0]
        else:
            s.files = g
        shards.append(s)
    return shards


def _inputs_digest(shards: Sequence[Shard]) -> str:
    h = hashlib.sha256()
    for s in shards:
        for p in s.files or [s.tar or ""]:
            h.update(os.path.abspath(p).encode("utf-8", "surrogateescape") + b"\0")
        h.update(b"\1")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# One shard: read, embed, write


_models: Dict[Tuple[str, str, int, int], Any] = {}
_models_lock = threading.Lock()


def _worker_model(job: Job):
    """The model, loaded once per process (a Dask worker keeps it across the shards it runs)."""
    from ._engine import Model

    key = (job.model, job.precision, job.threads, job.max_image_pixels)
    with _models_lock:
        m = _models.get(key)
        if m is None:
            m = Model(job.model, precision=job.precision, threads=job.threads, max_image_pixels=job.max_image_pixels)
            _models[key] = m
        return m


@dataclass
class _Sample:
    path: str  # image_path in the metadata: the file, or the webdataset key
    data: Any  # a path (files) or the encoded bytes (webdataset)
    caption: Optional[str]


def _caption_of(path: str) -> Optional[str]:
    txt = os.path.splitext(path)[0] + ".txt"
    try:
        with open(txt, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


_WDS_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset: key = the name up to the basename's first dot


def _webdataset_samples(tar_path: str, errors: List[Dict[str, str]]) -> Iterator[Dict[str, Any]]:
    """Samples of a webdataset shard: members grouped by key, in tar order (as webdataset groups them)."""
    try:
        tf = tarfile.open(tar_path, mode="r")
    except (OSError, tarfile.TarError) as e:
        errors.append({"input": tar_path, "error": f"not a readable tar archive: {e}"})
        return
    with tf:
        current: Optional[Dict[str, Any]] = None
        while True:
            try:
                member = tf.next()
            except (OSError, tarfile.TarError, EOFError) as e:
                errors.append({"input": tar_path, "error": f"corrupt tar archive after {tf.offset} bytes: {e}"})
                break
            if member is None:
                break
            if not member.isfile():
                continue
            m = _WDS_KEY.match(member.name)
            if not m:
                continue
            key, ext = m.group(1), m.group(2).lower()
            if current is None or current["__key__"] != key:
                if current is not None:
                    yield current
                current = {"__key__": key}
            try:
                f = tf.extractfile(member)
                current[ext] = f.read() if f is not None else b""
            except (OSError, tarfile.TarError, EOFError) as e:
                errors.append({"input": f"{tar_path}:{member.name}", "error": f"corrupt tar member: {e}"})
        if current is not None:
            yield current
        # Python's tarfile ends quietly at a truncated header; a whole archive ends with two zero blocks.
        tf.fileobj.seek(tf.offset)
        if tf.fileobj.read(1024) != bytes(1024):
            errors.append({"input": tar_path, "error": f"truncated or corrupt tar archive after {tf.offset} bytes"})


def _shard_samples(shard: Shard, job: Job, errors: List[Dict[str, str]]) -> List[_Sample]:
    samples: List[_Sample] = []
    if shard.tar is None:
        for p in shard.files:
            cap = _caption_of(p) if job.captions else None
            if job.captions and cap is None:
                errors.append({"input": p, "error": "no caption (" + os.path.splitext(p)[0] + ".txt)"})
                continue
            samples.append(_Sample(p, p, cap))
        return samples
    for item in _webdataset_samples(shard.tar, errors):
        key = item["__key__"]
        img_key = next((k for k in WDS_IMAGE_KEYS if k in item), None)
        if img_key is None:
            errors.append({"input": f"{shard.tar}:{key}", "error": "no image member (" + "/".join(WDS_IMAGE_KEYS) + ")"})
            continue
        cap = None
        if job.captions:
            if "txt" not in item:
                errors.append({"input": f"{shard.tar}:{key}", "error": "no caption member (.txt)"})
                continue
            try:
                cap = item["txt"].decode("utf-8")
            except UnicodeDecodeError as e:
                errors.append({"input": f"{shard.tar}:{key}.txt", "error": f"caption is not UTF-8: {e}"})
                continue
        samples.append(_Sample(key, item[img_key], cap))
    return samples


def _image_size(data: Any) -> Tuple[Optional[int], Optional[int]]:
    """(width, height) as stored in the file (before EXIF orientation), read from the header by Pillow when it is
    installed; None where it is not or cannot tell. Only metadata: the engine decodes the pixels."""
    try:
        from PIL import Image
    except ImportError:
        return None, None
    try:
        with Image.open(data if isinstance(data, str) else io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception:  # noqa: BLE001 - any Pillow failure only leaves the size unknown
        return None, None


def _embed_images(model, samples: List[_Sample], batch: int, errors: List[Dict[str, str]], name_of) -> Tuple[np.ndarray, List[int]]:
    """Embeddings of the readable samples and their indices. A chunk that fails is retried image by image, so one
    bad file costs only its own row."""
    rows: List[np.ndarray] = []
    kept: List[int] = []
    chunk = max(batch * 4, 32)
    for start in range(0, len(samples), chunk):
        idx = list(range(start, min(start + chunk, len(samples))))
        try:
            rows.append(model.embed_images([samples[i].data for i in idx], batch_size=batch))
            kept.extend(idx)
            continue
        except Error:
            pass
        for i in idx:
            try:
                rows.append(model.embed_images([samples[i].data], batch_size=1))
                kept.append(i)
            except Error as e:
                errors.append({"input": name_of(i), "error": str(e)})
    dim = model.embedding_dim
    return (np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)), kept


def _normalized(x: np.ndarray, dtype: str) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1
    return (x / n).astype(dtype)


def _write_atomic(path: str, write) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def shard_paths(output: str, name: str) -> Dict[str, str]:
    return {
        "img": os.path.join(output, "img_emb", f"img_emb_{name}.npy"),
        "text": os.path.join(output, "text_emb", f"text_emb_{name}.npy"),
        "meta": os.path.join(output, "metadata", f"metadata_{name}.parquet"),
        "errors": os.path.join(output, "errors", f"errors_{name}.json"),
    }


def shard_complete(output: str, shard: Shard, captions: bool) -> bool:
    p = shard_paths(output, shard.name)
    return os.path.exists(p["meta"]) and os.path.exists(p["img"]) and (not captions or os.path.exists(p["text"]))


def run_shard(shard: Shard, job: Job) -> Dict[str, Any]:
    """Embed one shard and write its partition (atomically, metadata last). Returns its counts. Runs on a worker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    delay = os.environ.get("ZEROSHOT_INFERENCE_TEST_DELAY")  # tests only: keeps shards in flight to kill a worker
    if delay:
        time.sleep(float(delay))
    model = _worker_model(job)
    errors: List[Dict[str, str]] = []
    samples = _shard_samples(shard, job, errors)
    label = (lambda i: f"{shard.tar}:{samples[i].path}") if shard.tar else (lambda i: samples[i].path)
    emb, kept = _embed_images(model, samples, job.batch_size, errors, label)
    samples = [samples[i] for i in kept]
    img = _normalized(emb, job.embedding_dtype)
    text = None
    if job.captions:
        caps = [s.caption or "" for s in samples]
        text = _normalized(model.embed_texts(caps) if caps else np.zeros((0, img.shape[1]), np.float32),
                           job.embedding_dtype)
    sizes = [_image_size(s.data) for s in samples]
    columns: Dict[str, Any] = {"image_path": pa.array([s.path for s in samples], pa.string())}
    if job.captions:
        columns["caption"] = pa.array([s.caption for s in samples], pa.string())
    columns["width"] = pa.array([w for w, _ in sizes], pa.int32())
    columns["height"] = pa.array([h for _, h in sizes], pa.int32())
    table = pa.table(columns)

    p = shard_paths(job.output, shard.name)
    _write_atomic(p["img"], lambda f: np.save(f, img))
    if text is not None:
        _write_atomic(p["text"], lambda f: np.save(f, text))
    if errors:
        _write_atomic(p["errors"], lambda f: f.write(json.dumps(errors, ensure_ascii=False, indent=1).encode()))
    elif os.path.exists(p["errors"]):
        os.unlink(p["errors"])  # a retried shard that now reads everything
    _write_atomic(p["meta"], lambda f: pq.write_table(table, f))
    return {"shard": shard.index, "rows": len(samples), "errors": len(errors), "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------------------------
# The job


def _check_plan(job: Job, shards: List[Shard], input_format: str, fingerprint: str, dim: int) -> None:
    """Write the output's plan, or check a resumed output was made the same way (model, dtype, inputs)."""
    plan = {
        "format": "clip-retrieval",
        "model": job.model,
        "model_fingerprint": fingerprint,
        "precision": job.precision,
        "embedding_dim": dim,
        "embedding_dtype": job.embedding_dtype,
        "captions": job.captions,
        "input_format": input_format,
        "shards": len(shards),
        "inputs_sha256": _inputs_digest(shards),
    }
    path = os.path.join(job.output, PLAN_FILE)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError) as e:
            raise Error(f"{path}: unreadable ({e}); remove it or use a new --output") from None
        if old.get("model_fingerprint") != fingerprint or old.get("precision") != job.precision:
            raise Error(f"{job.output}: was embedded with another model ({old.get('model')}, precision "
                        f"{old.get('precision')}); use a new --output")
        if old.get("embedding_dtype") != job.embedding_dtype:
            raise Error(f"{job.output}: holds {old.get('embedding_dtype')} embeddings, not {job.embedding_dtype}: "
                        f"pass --embedding-dtype {old.get('embedding_dtype')} or use a new --output")
        if old.get("captions") != job.captions:
            raise Error(f"{job.output}: was embedded {'with' if old.get('captions') else 'without'} --captions; "
                        "use the same setting or a new --output")
        if old.get("inputs_sha256") != plan["inputs_sha256"] or old.get("input_format") != input_format:
            raise Error(f"{job.output}: was embedded from other inputs (or another --shard-size); "
                        "use a new --output")
        return
    os.makedirs(job.output, exist_ok=True)
    _write_atomic(path, lambda f: f.write(json.dumps(plan, indent=1).encode()))


def _remove_stale_temporaries(output: str) -> None:
    """Temporary files of writers that were killed. Called when no shard of this job is running (before and after):
    the job owns its output folder."""
    for sub in ("img_emb", "text_emb", "metadata", "errors"):
        for f in glob.glob(os.path.join(output, sub, ".*.tmp-*")):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass


class _Progress:
    """Shards done and images/s on one stderr line, when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.rows, self.enabled = total, 0, 0, enabled
        self.t0 = time.perf_counter()

    def update(self, result: Dict[str, Any]) -> None:
        self.done += 1
        self.rows += result["rows"]
        if self.enabled:
            rate = self.rows / max(time.perf_counter() - self.t0, 1e-9)
            sys.stderr.write(f"\rshards {self.done}/{self.total}  images {self.rows}  {rate:.1f} images/s ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _dask_client(scheduler: str, timeout: float):
    try:
        from distributed import Client
    except ImportError:
        raise Error("--distributor dask needs the Dask 'distributed' package (pip install distributed, or Debian's "
                    "python3-distributed)") from None
    try:
        return Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise Error(f"{scheduler}: cannot reach the Dask scheduler ({e.__class__.__name__}: {e})") from None


def inference(
    input: str,  # noqa: A002 - the name of the command-line option
    output: str,
    model: str,
    *,
    input_format: str = "files",
    distributor: str = "local",
    scheduler: Optional[str] = None,
    shard_size: int = 10_000,
    precision: str = "f32",
    embedding_dtype: str = "float16",
    captions: bool = False,
    threads: int = 0,
    batch_size: int = 8,
    max_image_pixels: int = 100_000_000,
    progress: Optional[bool] = None,
    connect_timeout: float = 10.0,
) -> Dict[str, Any]:
    """Embed ``input`` into ``output`` (see the module's docstring) and return the summary (a dict)."""
    if input_format not in ("files", "webdataset"):
        raise ValueError(f"input_format must be 'files' or 'webdataset', not {input_format!r}")
    if distributor not in ("local", "dask"):
        raise ValueError(f"distributor must be 'local' or 'dask', not {distributor!r}")
    if embedding_dtype not in EMBEDDING_DTYPES:
        raise ValueError(f"embedding_dtype must be one of {EMBEDDING_DTYPES}, not {embedding_dtype!r}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, not {shard_size}")
    if distributor == "dask" and not scheduler:
        raise ValueError("distributor 'dask' needs a scheduler address (tcp://HOST:PORT)")
    t0 = time.perf_counter()
    shards = plan_shards(input, input_format, shard_size)
    job = Job(os.path.abspath(output), model, precision, threads, embedding_dtype, captions, batch_size,
              max_image_pixels)
    client = _dask_client(scheduler, connect_timeout) if distributor == "dask" else None
    try:
        # The fingerprint comes from the model as loaded here (local), or on a worker (dask: the model folder is
        # the workers', and this machine may not hold it).
        if client is None:
            m = _worker_model(job)
            fingerprint, dim = m.fingerprint, m.embedding_dim
        else:
            fingerprint, dim = client.submit(_model_identity, job, pure=False).result()
        _check_plan(job, shards, input_format, fingerprint, dim)
        for sub in ("img_emb", "metadata", "errors") + (("text_emb",) if captions else ()):
            os.makedirs(os.path.join(job.output, sub), exist_ok=True)
        _remove_stale_temporaries(job.output)
        todo = [s for s in shards if not shard_complete(job.output, s, captions)]
        bar = _Progress(len(todo), sys.stderr.isatty() if progress is None else progress)
        results: List[Dict[str, Any]] = []
        if client is None:
            for s in todo:
                results.append(run_shard(s, job))
                bar.update(results[-1])
        else:
            from distributed import as_completed

            futures = client.map(run_shard, todo, job=job, pure=False)
            with client.as_current():  # as_completed looks the client up
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update(results[-1])
        bar.close()
        _remove_stale_temporaries(job.output)  # a task of a killed worker may have left one behind
    finally:
        if client is not None:
            client.close()
    seconds = time.perf_counter() - t0
    rows = sum(r["rows"] for r in results)
    return {
        "output": job.output,
        "shards": len(shards),
        "shards_embedded": len(todo),
        "shards_skipped": len(shards) - len(todo),
        "images": rows,
        "errors": sum(r["errors"] for r in results),
        "seconds": round(seconds, 3),
        "images_per_second": round(rows / seconds, 2) if seconds > 0 else None,
    }


def _model_identity(job: Job) -> Tuple[str, int]:
    m = _worker_model(job)
    return m.fingerprint, m.embedding_dim


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m zeroshot.inference",
        description="Embed a data set (a folder, a list of paths, or webdataset .tar shards) into clip-retrieval's "
        "layout: OUT/img_emb/*.npy, OUT/text_emb/*.npy, OUT/metadata/*.parquet. Complete shards are skipped, so "
        "running it again resumes.",
    )
    p.add_argument("--input", required=True, help="a folder (recursive), a .txt file of paths, a .tar, or a glob")
    p.add_argument("--output", required=True, help="the output folder")
    p.add_argument("--model", required=True, help="a model folder or a hub id (readable on every worker)")
    p.add_argument("--input-format", choices=("files", "webdataset"), default="files")
    p.add_argument("--distributor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", help="the Dask scheduler, tcp://HOST:PORT (with --distributor dask)")
    p.add_argument("--shard-size", type=int, default=10_000, help="images per shard (files; a .tar is one shard)")
    p.add_argument("--precision", choices=("f32", "bf16", "int8", "int4"), default="f32")
    p.add_argument("--embedding-dtype", choices=EMBEDDING_DTYPES, default="float16")
    p.add_argument("--captions", action="store_true",
                   help="embed each image's caption too (NAME.txt beside it; the .txt member of a sample)")
    p.add_argument("--threads", type=int, default=0, help="encoder threads per process (0 = all cores)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.distributor == "dask" and not a.scheduler:
        p.error("--distributor dask needs --scheduler tcp://HOST:PORT")
    if a.shard_size < 1:
        p.error("--shard-size must be >= 1")
    try:
        summary = inference(
            a.input, a.output, a.model, input_format=a.input_format, distributor=a.distributor,
            scheduler=a.scheduler, shard_size=a.shard_size, precision=a.precision,
            embedding_dtype=a.embedding_dtype, captions=a.captions, threads=a.threads, batch_size=a.batch_size,
            progress=False if a.no_progress else None,
        )
    except (Error, ValueError) as e:
        print(f"zeroshot.inference: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zeroshot.inference: interrupted (complete shards are kept; run again to resume)", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    # Run the module under its importable name: Dask pickles functions of __main__ by value (with their globals),
    # those of zeroshot.inference by reference, which is what the workers (with zeroshot installed) can load.
    from zeroshot.inference import main as _main

    sys.exit(_main())
