#!/usr/bin/env bash
# The Python package's tests: `pip wheel .` once, the wheel installed into a fresh virtualenv (Debian's numpy and
# Pillow through --system-site-packages), pytest over python/tests; then, where the reference virtualenv exists
# (.venv-reference, made by scripts/reference-venv.sh, with transformers), the same wheel installed there and the
# comparison with transformers' own pipelines. The CLI comparison needs build/zeroshot (scripts/test.sh builds it).
#   ZEROSHOT_SHARED   the shared/ folder (default ../shared)
#   JOBS              build parallelism (default: all cores); ccache is used when installed
#   ZEROSHOT_WHEEL_BUILD_DIR  a position-independent build tree the wheel's build reuses (scripts/test.sh: build)
set -euo pipefail
cd "$(dirname "$0")/.."
export ZEROSHOT_SHARED="${ZEROSHOT_SHARED:-$(cd .. && pwd)/shared}"
export ZEROSHOT_CLI="${ZEROSHOT_CLI:-$PWD/build/zeroshot}"
export CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-$(nproc)}"
if [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
fi
VENV=build/venv-python
WHEELS=build/python-wheels
start=$SECONDS
/usr/bin/python3 -m venv --system-site-packages --clear "$VENV"
# pyarrow for zeroshot.inference's parquet metadata; below 16 because later wheels need NumPy 2 and the venv sees
# Debian's NumPy 1.24. Dask comes from Debian (install-deps.sh); the inference tests must not skip here.
"$VENV/bin/pip" install -q --disable-pip-version-check pytest "pyarrow>=14,<16"
export ZEROSHOT_REQUIRE_INFERENCE=1
# autofaiss (PyPI) reads zeroshot.inference's output in a test: its own venv, so its faiss-cpu wheel and fsspec stay
# out of the package's. fsspec 2024.6.1: Debian's 2022.11 does not match top-level files with autofaiss's "/**/*.npy".
AUTOFAISS_VENV=build/venv-autofaiss
if [ ! -x "$AUTOFAISS_VENV/bin/python" ] || ! "$AUTOFAISS_VENV/bin/python" -c "import autofaiss" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages --clear "$AUTOFAISS_VENV"
  "$AUTOFAISS_VENV/bin/pip" install -q --disable-pip-version-check autofaiss==2.18.0 fsspec==2024.6.1 "pyarrow>=14,<16"
fi
export ZEROSHOT_AUTOFAISS_PYTHON="$PWD/$AUTOFAISS_VENV/bin/python"
rm -rf "$WHEELS"
# ZEROSHOT_WHEEL_BUILD_DIR (scripts/test.sh sets it to its Release tree, configured position-independent for this):
# the wheel's CMake build runs in that tree, with the options it was configured with, so it compiles the module and
# links the engine's libraries from there instead of compiling the engine a second time (~200 s of CPU). Unset, the
# wheel builds on its own in build-python/, as `pip wheel .` does for a user.
wheel_args=()
if [ -n "${ZEROSHOT_WHEEL_BUILD_DIR:-}" ]; then
  cache="$ZEROSHOT_WHEEL_BUILD_DIR/CMakeCache.txt"
  # Without build isolation: scikit-build-core clears the CMake cache of a build folder last configured from another
  # (isolated, temporary) environment; from this venv's it keeps the tree's cache. pyproject.toml's build requirements:
  "$VENV/bin/pip" install -q --disable-pip-version-check "scikit-build-core>=0.10" "nanobind>=2.0"
  wheel_args=(--no-build-isolation --config-settings="build-dir=$ZEROSHOT_WHEEL_BUILD_DIR")
  for opt in ZEROSHOT_BUILD_TESTS ZEROSHOT_BUILD_BENCHMARKS; do  # pyproject.toml turns them off: keep the tree's
    wheel_args+=(--config-settings="cmake.define.$opt=$(sed -n "s/^$opt:BOOL=//p" "$cache")")
  done
fi
"$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps "${wheel_args[@]}" -w "$WHEELS" .
"$VENV/bin/pip" install -q --disable-pip-version-check "$WHEELS"/zeroshot-*.whl
echo "test-python: wheel built and installed in $((SECONDS - start)) s"
# pytest exits 5 when it collected no test: set -e makes that (like any failure) fail the run.
"$VENV/bin/python" -m pytest -p no:cacheprovider -q python/tests
if [ ! -x .venv-reference/bin/python ] && [ -f scripts/reference-venv.sh ]; then bash scripts/reference-venv.sh; fi
if [ -x .venv-reference/bin/python ]; then
  .venv-reference/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$WHEELS"/zeroshot-*.whl
  .venv-reference/bin/python -m pip install -q --disable-pip-version-check pytest
  .venv-reference/bin/python -m pytest -p no:cacheprovider -q -rs python/tests/test_transformers.py
else
  echo "test-python: no .venv-reference (scripts/reference-venv.sh): the comparison with transformers is skipped"
fi
echo "test-python: ok in $((SECONDS - start)) s"
