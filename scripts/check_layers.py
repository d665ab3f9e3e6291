#!/usr/bin/env python3
"""Checks that every #include of the engine's sources follows the layer map (README "Layout").

Each folder under src/ is one layer (one CMake library); a layer may include its own headers and those of the
layers it links, directly or through them, and nothing above it. The public headers: zeroshot/error.h anywhere;
zeroshot/zeroshot.h and zeroshot/tagging.h only from the API (src/api) and what is built on it. The build does
not enforce this by itself (every target sees src/ on its include path, since headers are named "layer/x.h"),
so this test does: a new #include that points up the chain fails it, naming the file and the line.

Usage: check_layers.py [REPO_ROOT]    exit 0 when clean, 1 with one line per violation.
"""
import os
import re
import sys

# What each layer may include (its own folder implied), mirroring the target_link_libraries of src/*/CMakeLists.txt
# and src/CMakeLists.txt, closed transitively. "public" is include/zeroshot/zeroshot.h + tagging.h.
LOWER = {
    "util": set(),
    "io": {"util"},
    "text": {"io", "util"},
    "image": {"io", "util"},
    "audio": {"io", "util"},
    "nn": {"util"},
    "models": {"nn", "io", "util"},
    "classify": {"io", "util"},
    "api": {"classify", "models", "image", "text", "audio", "nn", "io", "util", "public"},
    "eval": {"api", "classify", "models", "image", "text", "audio", "nn", "io", "util", "public"},
    "index": {"api", "classify", "models", "image", "text", "audio", "nn", "io", "util", "public"},
    "server": {"api", "eval", "index", "classify", "models", "image", "text", "audio", "nn", "io", "util", "public"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"')


def target_layer(first, rest):
    if first == "zeroshot":
        return None if rest == "error.h" else "public"
    return first


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    bad = []
    for layer, allowed in LOWER.items():
        folder = os.path.join(root, "src", layer)
        for dirpath, _, files in os.walk(folder):
            for f in sorted(files):
                # Tests link more than their layer (test support, the public API to drive end-to-end checks).
                if not f.endswith((".cpp", ".h")) or f.endswith("_test.cpp") or f == "test_util.h":
                    continue
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        t = target_layer(m.group(1), m.group(2))
                        if t is None or t == layer or t in allowed:
                            continue
                        if t not in LOWER and t != "public":
                            continue  # not a layer of ours (a generated header, a test folder)
                        rel = os.path.relpath(path, root)
                        bad.append(f"{rel}:{n}: layer '{layer}' includes \"{m.group(1)}/{m.group(2)}\" from layer "
                                   f"'{t}', which it does not link (README: Layout)")
    for b in bad:
        print(b)
    if bad:
        return 1
    print(f"layers: {len(LOWER)} checked, every #include points down the chain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
