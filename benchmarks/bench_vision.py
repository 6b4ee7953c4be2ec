"""Benchmark: AuroraCap's full-size vision tower (ViT-H/14 at 378 px, 31 layers run, random weights) on F frames
at ρ ∈ {1.0, 0.5, 0.2, 0.1}, with the merge step on the Triton kernel and on the PyTorch reference.

Reports latency (median) and frames/s per (backend, ρ), and the speed-up of each ρ over ρ = 1.0 measured side
by side in the same run. Target (GPU): ρ = 0.2 at least 1.5x faster than ρ = 1.0.

    .venv/bin/python -m benchmarks.bench_vision                       # CUDA, fp16, 8 frames, both backends
    .venv/bin/python -m benchmarks.bench_vision --device cpu --frames 1 --dtype fp32 --reps 2   # CPU ratios only
    .venv/bin/python -m benchmarks.bench_vision --smoke              # tiny width, CPU, seconds (checks the script)

Absolute CPU times are not reported as results (ratios only); GPU runs save JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from aurora_serve.model.spec import VisionConfig
from aurora_serve.model.token_count import merge_r, tokens_per_frame
from aurora_serve.model.vision import AuroraVisionTower

from .provenance import REPO, command, git_state

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
RATIOS = (1.0, 0.5, 0.2, 0.1)
TARGET_SPEEDUP_0_2 = 1.5


def time_median(fn, device: torch.device, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after one warm-up (CUDA events on GPU)."""
    fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def environment(device: torch.device) -> dict:
    env = {"command": command(), **git_state("aurora_serve/model", "aurora_serve/kernels", "benchmarks"),
           "torch": torch.__version__,
           "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor()}
    if device.type == "cuda":
        import triton

        env.update(device=torch.cuda.get_device_name(), triton=triton.__version__, cuda=torch.version.cuda)
    else:
        env["device"] = "cpu"
    return env


def agreement(tower, pixels, backends: list[str]) -> list[dict]:
    """Per ρ, each backend's output against the tower in float32 with the reference merge, as
    ``‖out − ref32‖ / ‖ref32‖``. Low precision can flip a merge decision near a tie (then a few rows differ
    a lot), so this is recorded, not asserted; tests/kernels holds the kernels to a tolerance table."""
    ref32_tower = copy.deepcopy(tower).float()
    rows = []
    for rho in RATIOS:
        r = merge_r(rho)
        with torch.inference_mode():
            ref32 = ref32_tower(pixels.float(), r, merge_backend="reference")
            row = {"token_kept_ratio": rho}
            for backend in backends:
                out = tower(pixels, r, merge_backend=backend).float()
                row[f"{backend}_rel_err_vs_fp32"] = float((out - ref32).norm() / ref32.norm())
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    cfg = VisionConfig() if not args.smoke else VisionConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4)
    tower = AuroraVisionTower(cfg).to(device, DTYPES[args.dtype]).eval()
    for p in tower.parameters():  # random weights at a realistic scale (no NaNs in fp16)
        torch.nn.init.normal_(p, std=0.02)
    pixels = torch.randn(args.frames, 3, cfg.image_size, cfg.image_size, device=device, dtype=DTYPES[args.dtype])
    backends = ["reference"] if device.type == "cpu" else ["triton", "reference"]
    rows = []
    for backend in backends:
        for rho in RATIOS:
            r = merge_r(rho)

            def fn():
                with torch.inference_mode():
                    out = tower(pixels, r, merge_backend=backend)
                assert out.shape[1] == tokens_per_frame(rho)

            sec = time_median(fn, device, args.reps)
            rows.append({"backend": backend, "token_kept_ratio": rho, "r": r, "tokens_per_frame": tokens_per_frame(rho),
                         "median_s": sec, "frames_per_s": args.frames / sec})
    for row in rows:
        base = next(x for x in rows if x["backend"] == row["backend"] and x["token_kept_ratio"] == 1.0)
        row["speedup_vs_rho_1"] = base["median_s"] / row["median_s"]
    return {"agreement": agreement(tower, pixels, backends),"env": environment(device), "frames": args.frames, "dtype": args.dtype, "smoke": args.smoke, "rows": rows,
            "target": {"rho_0.2_speedup_vs_rho_1.0": TARGET_SPEEDUP_0_2}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--smoke", action="store_true", help="tiny width on CPU: checks the script, numbers meaningless")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/bench_vision_<device>.json on GPU)")
    args = p.parse_args()
    if args.smoke:
        args.device, args.dtype, args.reps, args.frames = "cpu", "fp32", 1, min(args.frames, 2)
    report = run(args)
    print(f"{'backend':<10} {'rho':>5} {'tok/frame':>9} {'median':>10} {'frames/s':>9} {'vs rho=1':>8}")
    for row in report["rows"]:
        print(f"{row['backend']:<10} {row['token_kept_ratio']:>5} {row['tokens_per_frame']:>9} "
              f"{row['median_s'] * 1e3:>8.1f}ms {row['frames_per_s']:>9.2f} {row['speedup_vs_rho_1']:>7.2f}x")
    for row in report["agreement"]:
        print(f"rho {row['token_kept_ratio']}: " + ", ".join(
            f"{k.removesuffix('_rel_err_vs_fp32')} {v:.2e}" for k, v in row.items() if k.endswith("_vs_fp32"))
            + " (relative error against the fp32 reference tower)")
    out = args.out or (None if args.device == "cpu" else
                       str(REPO / "benchmarks" / "results" / f"bench_vision_{report['env']['device'].replace(' ', '_')}.json"))
    if out:
        Path(out).write_text(json.dumps(report, indent=1) + "\n")
        print("saved", out)


if __name__ == "__main__":
    main()
