"""Benchmark: one token-merging step, Triton vs the PyTorch reference vs torch.compile(reference).

AuroraCap shapes: C = 1280, D = 80 (keys averaged over 16 heads), T = 730 at the first layer, shrinking by
k = min(r, (T - 1) // 2) per layer (31 layers run); F frames; fp16 and bf16. Per point: medians of
``triton.testing.do_bench``; the Triton launcher also under a CUDA graph (pure GPU time, no launch cost);
the share of one ViT-H layer at the same shape (SDPA attention + MLP 1280 -> 5120 -> 1280, quick_gelu; the
merge not included) that the merge costs; and its bandwidth against a device-to-device copy
(``torch.empty_like(buf).copy_(buf)``) of the bytes the merge must move: read x, metric and sizes once,
write the T - k output rows and sizes.
Inputs rotate among enough random sets to exceed ``--rotate-mb`` (default 256 MB, five times an H100's L2), so
repeated calls measure device memory and not the cache (the copy rotates the same way); the CUDA-graph column
captures several calls, so it rotates too. The kernels' registers, spills and shared memory come from
benchmarks/kernel_resources.py (the compiler's report, same launch configurations).

Targets: Triton >= 5x faster than the reference, >= 60 % of copy bandwidth, <= 3 % of a layer.
The first kernel version (benchmarks/kernel_versions/tome_v1.py) is timed beside the current one (column v1).

    .venv/bin/python -m benchmarks.bench_tome            # CUDA; writes benchmarks/results/bench_tome_<gpu>.json
    .venv/bin/python -m benchmarks.bench_tome --smoke    # CPU, tiny shapes, reference only (JSON only with --out)
    TRITON_INTERPRET=1 .venv/bin/python -m benchmarks.bench_tome --smoke --smoke-kernels   # + Triton, interpreted
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F_
from torch import nn

from aurora_serve.kernels.tome_ref import bipartite_merge_ref, merge_count

from .provenance import REPO, command, git_state

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TARGETS = {"speedup_vs_reference": 5.0, "copy_bandwidth_fraction": 0.60, "layer_share": 0.03}
# --sweep: launch-configuration variants timed beside the default (KERNEL_NOTES.md, questions 1-3); each maps
# kernel names to entries that replace launch_configs' own.
SWEEP = {
    "match_A16": {"_match_kernel": {"BLOCK_A": 16}},
    "match_B32": {"_match_kernel": {"BLOCK_B": 32}},
    "plan_32": {"_plan_kernel": {"BLOCK": 32, "num_warps": 4}},
    "merge_R16_C256": {"_merge_kernel": {"BLOCK_R": 16, "BLOCK_C": 256, "num_warps": 4}},
    "merge_R8_C512": {"_merge_kernel": {"BLOCK_R": 8, "BLOCK_C": 512, "num_warps": 4}},
    "merge_R2_C2048_w4": {"_merge_kernel": {"BLOCK_R": 2, "BLOCK_C": 2048, "num_warps": 4}},
}


class VitLayer(nn.Module):
    """Pre-LN CLIP layer without the merge: ``x [F, T, C] -> [F, T, C]``."""

    def __init__(self, channels: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.qkv, self.out = nn.Linear(channels, 3 * channels), nn.Linear(channels, channels)
        self.fc1, self.fc2 = nn.Linear(channels, mlp), nn.Linear(mlp, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(f, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.out(F_.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(f, t, c))
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


def token_schedule(t0: int, r: int, layers: int) -> list[int]:
    """T before each of ``layers`` merges: ``T_{j+1} = T_j - min(r, (T_j - 1) // 2)``."""
    ts = [t0]
    for _ in range(layers - 1):
        ts.append(ts[-1] - merge_count(r, ts[-1]))
    return ts


def make_timer(device: torch.device, rep_ms: int):
    if device.type == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=10, rep=rep_ms, return_mode="median")

    def cpu_median(fn, runs: int = 5) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    return cpu_median


def graph_time(fn, rep_ms: int):
    """Median ms under a CUDA graph, or the error text if capture fails (reported, not hidden)."""
    import triton.testing

    try:
        return triton.testing.do_bench_cudagraph(fn, rep=rep_ms, return_mode="median")
    except RuntimeError as exc:
        return f"capture failed: {exc}"[:200]


def bench_point(args, impls, layer, timer, dtype, frames, r, t, device) -> dict:
    """Time every implementation on one (dtype, F, r, T) and derive the ratios."""
    gen = torch.Generator(device=device).manual_seed(0)
    c, d = args.channels, args.head_dim
    es = torch.empty((), dtype=dtype).element_size()
    per_set = es * frames * t * (2 * c + d + 1)  # inputs and outputs of one call
    sets = [random_inputs(frames, t, c, d, dtype, device, gen)
            for _ in range(max(1, -(-args.rotate_mb * 2**20 // per_set)))]
    x, size, metric = sets[0]
    k = merge_count(r, t)
    row = {"dtype": str(dtype).removeprefix("torch."), "F": frames, "r": r, "T": t, "k": k, "input_sets": len(sets)}
    x_ref, s_ref = bipartite_merge_ref(x, size, metric, r)
    for name, fn in impls.items():
        call = rotating(lambda xs, fn=fn: fn(*xs, r), sets)
        try:
            x_out, s_out = fn(x, size, metric, r)  # warm-up (compiles) and invariants: same count, sizes conserved
        except Exception as exc:  # torch.compile or the old version failing must not cost the other columns
            if name not in ("compiled", "triton_v1") and not name.startswith("sweep:"):
                raise
            row[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"{name} failed at {row}: {row[f'{name}_error']}", file=sys.stderr)
            continue
        assert x_out.shape == x_ref.shape, (name, x_out.shape, x_ref.shape)
        assert torch.equal(s_out.float().sum(1), size.float().sum(1)), name
        row[f"{name}_ms"] = timer(call)
        if name == "triton":
            if device.type == "cuda":
                row["triton_graph_ms"] = graph_time(call, args.rep)
            close = ((x_out.float() - x_ref.float()).abs() <= 2e-2 * (1 + x_ref.float().abs())).all(-1)
            row["rows_close_to_reference"] = float(close.float().mean())  # < 1 only where fp16 ties flip a plan
    moved = es * (frames * t * c + frames * (t - k) * c + frames * t * d) + size.element_size() * frames * (2 * t - k)
    bufs = [torch.randn(max(1, moved // 2 // es), device=device, dtype=dtype, generator=gen) for _ in sets]
    row["copy_ms"] = timer(rotating(lambda buf: torch.empty_like(buf).copy_(buf), bufs))
    row["bytes_moved"] = moved
    with torch.no_grad():
        row["layer_ms"] = timer(lambda: layer(x))
    best = row.get("triton_ms", row["reference_ms"])
    row["speedup_vs_reference"] = row["reference_ms"] / best
    if "compiled_ms" in row:
        row["speedup_vs_compiled"] = row["compiled_ms"] / best
    if "triton_v1_ms" in row:
        row["speedup_vs_v1"] = row["triton_v1_ms"] / best
    row["merge_GBps"] = moved / best / 1e6
    row["copy_bandwidth_fraction"] = row["copy_ms"] / best
    row["layer_share"] = best / row["layer_ms"]
    return row


def random_inputs(frames, t, c, d, dtype, device, gen) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, size, metric)``: normal tokens and metric, sizes 1..3 in x's dtype (as upstream keeps them)."""
    x = torch.randn(frames, t, c, device=device, dtype=dtype, generator=gen)
    metric = torch.randn(frames, t, d, device=device, dtype=dtype, generator=gen)
    size = torch.randint(1, 4, (frames, t), device=device, generator=gen).to(dtype)
    return x, size, metric


def rotating(fn, items: list):
    """A no-argument callable that applies ``fn`` to the next of ``items`` on every call (round robin)."""
    cycle = itertools.cycle(items)
    return lambda: fn(next(cycle))


def implementations(device: torch.device, use_compile: bool, kernels: bool, sweep: bool = False) -> dict:
    """Reference always; on CUDA (or with ``kernels`` under the interpreter) the Triton versions too, and
    with ``sweep`` the SWEEP launch-configuration variants of the current kernels."""
    impls = {"reference": bipartite_merge_ref}
    if device.type != "cuda" and not kernels:
        return impls
    if use_compile and device.type == "cuda":
        # dynamic=True: one graph for every T; fullgraph=True: a graph break fails loudly, never falls back.
        # Room for a recompile per dtype / guard: past the limit fullgraph raises instead of timing eager.
        torch._dynamo.config.recompile_limit = 64
        impls["compiled"] = torch.compile(bipartite_merge_ref, dynamic=True, fullgraph=True)
    from aurora_serve.kernels.tome import tome_merge_triton

    impls["triton"] = _uniform(tome_merge_triton)
    impls["triton_v1"] = _uniform(_load_version("tome_v1").tome_merge_triton)
    if sweep:
        for variant, overrides in SWEEP.items():
            impls[f"sweep:{variant}"] = _uniform(functools.partial(tome_merge_triton, config_overrides=overrides))
    return impls


def sweep_summary(rows: list[dict]) -> dict:
    """Per SWEEP variant: its time over the default kernel's, median and range over the measured points."""
    out = {}
    for variant in SWEEP:
        ratios = [w[f"sweep:{variant}_ms"] / w["triton_ms"] for w in rows if f"sweep:{variant}_ms" in w]
        if ratios:
            out[variant] = {"median_time_vs_default": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return out


def _uniform(launcher):
    """A per-frame-r launcher as ``fn(x, size, metric, r)`` with one r for every frame."""
    def call(x, size, metric, r):
        x_out, size_out, _ = launcher(x, size, metric, torch.full((x.shape[0],), r))
        return x_out, size_out

    return call


def _load_version(name: str):
    """An earlier kernel version kept under benchmarks/kernel_versions/ (timed beside the current one)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"kernel_versions.{name}", REPO / "benchmarks/kernel_versions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environment(device: torch.device) -> dict:
    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type == "cuda":
        import triton

        versions["triton"] = triton.__version__
    return {
        **git_state("aurora_serve/kernels", "benchmarks/bench_tome.py"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "versions": versions,
    }


def print_table(rows: list[dict]) -> None:
    def ms(v):
        return f"{v:9.3f}" if isinstance(v, float) else f"{'-':>9}"

    print(f"{'dtype':>8} {'F':>3} {'r':>3} {'layer':>5} {'T':>4} {'k':>3} {'ref ms':>9} {'compile':>9} "
          f"{'triton':>9} {'graph':>9} {'v1':>9} {'x ref':>6} {'layer ms':>9} {'share':>6} {'GB/s':>7} {'copy%':>6}")
    for w in rows:
        print(f"{w['dtype']:>8} {w['F']:>3} {w['r']:>3} {w['layer']:>5} {w['T']:>4} {w['k']:>3} "
              f"{ms(w['reference_ms'])} {ms(w.get('compiled_ms'))} {ms(w.get('triton_ms'))} "
              f"{ms(w.get('triton_graph_ms'))} {ms(w.get('triton_v1_ms'))} {w['speedup_vs_reference']:5.1f}x {ms(w['layer_ms'])} "
              f"{100 * w['layer_share']:5.1f}% {w['merge_GBps']:7.0f} {100 * w['copy_bandwidth_fraction']:5.0f}%")


def check_targets(rows: list[dict]) -> dict:
    worst = {
        "speedup_vs_reference": min(w["speedup_vs_reference"] for w in rows),
        "copy_bandwidth_fraction": min(w["copy_bandwidth_fraction"] for w in rows),
        "layer_share": max(w["layer_share"] for w in rows),
    }
    met = {name: (value <= TARGETS[name]) if name == "layer_share" else (value >= TARGETS[name])
           for name, value in worst.items()}
    return {"targets": TARGETS, "worst": worst, "met": met}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, reference only")
    parser.add_argument("--sweep", action="store_true", help="also time the SWEEP launch-configuration variants")
    parser.add_argument("--smoke-kernels", action="store_true",
                        help="with --smoke under TRITON_INTERPRET=1: also run the Triton versions (checks the "
                        "GPU-only code paths of this script; interpreter times mean nothing)")
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--r", type=int, nargs="+", default=[4, 11, 22], help="rho = 0.8, 0.5, 0.01")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 15, 30], help="which of the 31 merges")
    parser.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=sorted(DTYPES))
    parser.add_argument("--tokens", type=int, default=730, help="T before the first merge (CLS included)")
    parser.add_argument("--channels", type=int, default=1280)
    parser.add_argument("--head-dim", type=int, default=80)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--mlp", type=int, default=5120)
    parser.add_argument("--rep", type=int, default=50, help="do_bench rep, ms per measurement")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (saves compile time)")
    parser.add_argument("--rotate-mb", type=int, default=256,
                        help="rotate among input sets totalling at least this much (defeats the L2 cache)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default: results/ for a CUDA run)")
    args = parser.parse_args()
    if args.smoke:
        args.frames, args.r, args.layers, args.dtypes = [1, 2], [3], [0, 3, 7], ["fp32"]
        args.tokens, args.channels, args.head_dim, args.heads, args.mlp = 31, 64, 16, 4, 256
        args.rotate_mb = 1
    return args


def main() -> None:
    args = parse_args()
    if args.smoke_kernels and not (args.smoke and os.environ.get("TRITON_INTERPRET") == "1"):
        sys.exit("bench_tome: --smoke-kernels needs --smoke and TRITON_INTERPRET=1")
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_tome: needs a CUDA device (use --smoke for a CPU check of the script)")
    timer = make_timer(device, args.rep)
    impls = implementations(device, use_compile=not args.no_compile, kernels=args.smoke_kernels, sweep=args.sweep)
    rows = []
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        layer = VitLayer(args.channels, args.heads, args.mlp).to(device, dtype).eval()
        for frames in args.frames:
            for r in args.r:
                schedule = token_schedule(args.tokens, r, 31)
                for j in args.layers:
                    row = bench_point(args, impls, layer, timer, dtype, frames, r, schedule[j], device)
                    rows.append({"layer": j, **row})
    print_table(rows)
    summary = check_targets(rows)
    if args.sweep:
        summary["sweep"] = sweep_summary(rows)
        print("sweep: time vs the default configuration (median over points): " + ", ".join(
            f"{name} {v['median_time_vs_default']:.2f}" for name, v in summary["sweep"].items()))
    print(json.dumps(summary, indent=1))
    out = args.out or (None if args.smoke else REPO / "benchmarks/results" /
                       f"bench_tome_{torch.cuda.get_device_name().replace(' ', '_')}.json")
    if out is not None:
        report = {"benchmark": "bench_tome", "command": command(),
                  **environment(device), "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()},
                  "results": rows, **summary}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
