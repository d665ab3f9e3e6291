"""Shares of the forward pass by kind of work, from a `perf record` of bench/forward_profile.

    perf record -F 499 -o fp.data build/bench/forward_profile MODEL --precision int8 --batch 8 --iters 4
    /usr/bin/python3 bench/perf_shares.py fp.data

Groups the samples of `perf report --sort symbol` by kernel symbol (the GEMM tiles with their fused bias /
GELU / residual epilogue, the attention kernels, the activation conversion with its fused layer norm, ...) and
prints each group's share of all samples and of the forward pass (load-time packing and quantization left out).
Symbols the compiler inlined count where they were inlined (e.g. the attention micro-kernels inside
attention_head since the blocked loop).
"""
import re
import subprocess
import sys

# Load-time work, and the page faults that are mostly the load's (fresh panel pages): left out of the forward pass.
LOAD = ("quantize_int8", "pack_", "f32_to_bf16", "mersenne", "_M_gen_rand", "normal_distribution", "safetensors",
        "do_lookup", "clear_page", "exc_page_fault", "memcg")
GROUPS = (  # first match wins
    ("tile<", "linear layers: GEMM tiles (incl. fused bias / GELU / residual)"),
    ("scores4", "attention: QK^T"),
    ("pv4", "attention: AV"),
    ("attention_head", "attention: softmax, K^T / V copies (+ inlined kernels)"),
    ("softmax", "attention: softmax, K^T / V copies (+ inlined kernels)"),
    ("transpose16", "attention: softmax, K^T / V copies (+ inlined kernels)"),
    ("convert_a", "activation conversion (+ fused layer norm)"),
    ("layer_norm", "layer norm (standalone)"),
    ("activate", "activation pass"),
)


def main():
    out = subprocess.run(["perf", "report", "-i", sys.argv[1], "--no-children", "--sort", "symbol", "--stdio"],
                         capture_output=True, text=True, check=True).stdout
    shares = {}
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*?)\s*$", line)
        if not m:
            continue
        pct, space, sym = float(m.group(1)), m.group(2), m.group(3)
        if any(s in sym for s in LOAD):
            group = "(load: packing, quantization, page faults)"
        else:
            group = next((g for key, g in GROUPS if key in sym), "kernel (page faults, scheduling)" if space == "k"
                         else "other")
        shares[group] = shares.get(group, 0.0) + pct
    forward = sum(v for k, v in shares.items() if not k.startswith("(load"))
    print("| work | % of samples | % of forward |")
    print("|---|---|---|")
    for group, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
        of_fwd = "-" if group.startswith("(load") else f"{100 * pct / forward:.1f}"
        print(f"| {group} | {pct:.1f} | {of_fwd} |")


if __name__ == "__main__":
    main()
