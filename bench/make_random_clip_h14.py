#!/usr/bin/python3
"""Write a ViT-H/14 CLIP checkpoint with random weights (Hugging Face layout) for the big-model benchmarks
(docs/benchmarks.md, "Big models in little memory"): make_random_clip.py (ZEROSHOT_SHARED/tools) with one more
preset, the geometry of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (vision 1280 wide, 32 layers, 16 heads, patch 14,
image 224; text 1024 wide, 24 layers, 16 heads; projection 1024; gelu). About 3.9 GB in F32.

  make_random_clip_h14.py OUT_DIR [--dtype F32|F16|BF16] [--seed N] [--shared /work/shared]
"""
import os
import sys


def main():
    shared = os.environ.get("ZEROSHOT_SHARED", "/work/shared")
    if "--shared" in sys.argv:
        i = sys.argv.index("--shared")
        shared = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    sys.path.insert(0, os.path.join(shared, "tools"))
    import make_random_clip as m  # noqa: E402 (found through the path above)

    #                      proj image patch v_w v_layers v_heads t_w t_layers t_heads act
    m.PRESETS["ViT-H-14"] = (1024, 224, 14, 1280, 32, 16, 1024, 24, 16, "gelu")
    sys.argv = [sys.argv[0], "ViT-H-14"] + sys.argv[1:]
    m.main()


if __name__ == "__main__":
    main()
