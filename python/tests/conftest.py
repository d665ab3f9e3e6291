"""Shared helpers of the Python package's tests: fixture paths, the expected outputs, the CLI.

Fixtures are read from $ZEROSHOT_SHARED/fixtures (default: ../shared beside the repository), never copied. The CLI
comparison uses $ZEROSHOT_CLI (default build/zeroshot); scripts/test-python.sh sets it and then it must exist.
"""

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ZEROSHOT_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
IMAGES = FIXTURES / "images"
AUDIO = FIXTURES / "audio"
CLIP_MODELS = ["clip-tiny-quickgelu", "clip-tiny-gelu-f16"]
CLAP_MODELS = ["clap-tiny-unfused", "clap-tiny-fused"]

if not FIXTURES.is_dir():
    raise RuntimeError(f"{FIXTURES}: no fixtures (set ZEROSHOT_SHARED)")


def clip_dir(name):
    return FIXTURES / "clip" / name


def clap_dir(name):
    return FIXTURES / "clap" / name


def expected_json(model_dir):
    return json.loads((Path(model_dir) / "expected.json").read_text())


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (f32 / f16 / i64 tensors only: what the fixtures hold)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in dtypes:
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


def assert_scores_match(got, want, tol=1e-4):
    """Pipeline results: same labels in the same order, scores within tol (the fixtures' zero-shot tolerance)."""
    assert [r["label"] for r in got] == [r["label"] for r in want], (got, want)
    diff = max(abs(g["score"] - w["score"]) for g, w in zip(got, want))
    assert diff <= tol, (diff, got, want)


# The CLI and the module run the same code and give the same float32 scores when built alike (they do in
# scripts/test-python.sh's Release builds); another build of either (a sanitizer build, other -O flags) may differ
# in the last digit, so "the same numbers" is held to this.
CLI_TOL = 1e-5  # 10x tighter than the fixtures; a RelWithDebInfo + ASan module differed from the Release CLI by 2.6e-6


def same_as_cli(cli, ours):
    """Lists of (key, score): the same keys in the same order, scores within CLI_TOL."""
    assert [k for k, _ in cli] == [k for k, _ in ours], (cli, ours)
    assert max((abs(a - b) for (_, a), (_, b) in zip(cli, ours)), default=0) <= CLI_TOL, (cli, ours)


def cli_path():
    p = os.environ.get("ZEROSHOT_CLI")
    if p:
        if not Path(p).is_file():
            raise RuntimeError(f"ZEROSHOT_CLI={p}: not found")
        return p
    p = REPO / "build" / "zeroshot"
    if not p.is_file():
        pytest.skip(f"{p} not built (build the zeroshot_cli target or set ZEROSHOT_CLI)")
    return str(p)


def run_cli(*args):
    """The CLI's JSON lines (one per input) and its exit code."""
    r = subprocess.run([cli_path(), *map(str, args)], capture_output=True, text=True, timeout=600)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    return lines, r.returncode, r.stderr
