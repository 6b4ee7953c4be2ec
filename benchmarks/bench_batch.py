"""Captioning a folder, side by side in one run: videos/min for

  sequential   the plain-PyTorch batch-1 loop of upstream inference.py (sequential_baseline.py), how users caption
               a folder today
  batch        ``aurora-serve batch DIR`` with the engine in-process (``--max-in-flight 16``)
  server       ``aurora-serve batch DIR --server URL`` against ``aurora-serve serve``, concurrency 16
  ray          ``aurora-serve batch DIR --ray`` on a local Ray instance, one actor

then a resume check: the in-process command stopped by SIGTERM a quarter of the way in, then run again (it must redo no row the
first run wrote). Clips are generated (seeded H.264, mixed lengths and resolutions) and every path generates exactly
``--max-tokens`` tokens (ignore_eos) with greedy decoding, 8 frames, ρ 0.2.

The served and batch rates are steady rates (the summary's ``steady_rows_per_min``: rows after the first wave of
``--max-in-flight``, over the time since it finished), so engine start-up (a fixed cost, ~15-60 s here) is left out
of every path, as the baseline leaves out loading its model. Phases run one after another, never together; the
load average is recorded around each, because this machine is shared.

    .venv/bin/python -m benchmarks.bench_batch                # ~15-25 min on 2 shared cores
    .venv/bin/python -m benchmarks.bench_batch --quick        # a smoke run: a few clips, no JSON unless --out
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .loadgen import REPO, ClipSpec, Media, environment, make_video
from .provenance import command, git_state, machine
from .sequential_baseline import baseline
from .served import Server

SPECS = [ClipSpec(2.0, 320, 180), ClipSpec(5.0, 640, 360), ClipSpec(10.0, 640, 360), ClipSpec(4.0, 960, 540)]
TARGETS = {"batch_over_sequential": 1.2, "ray_one_actor_over_batch": 0.9}


def make_clips(folder: Path, n: int, seed: int) -> list[Path]:
    """``n`` clips cycling through SPECS (cached by their parameters in the load generator's cache)."""
    cache = Path(tempfile.gettempdir()) / "aurora-load-media"
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:03d}.mp4"
        path.write_bytes(make_video(seed + i, SPECS[i % len(SPECS)], cache))
        paths.append(path)
    return paths


def batch_cli(folder: Path, out: Path, args, extra: list[str], stop_after_rows: int | None = None) -> dict:
    """One ``aurora-serve batch`` run; its JSON summary (stdout's last line) and the load average around it.
    ``stop_after_rows``: SIGTERM once that many rows are in OUTPUT (the resume check)."""
    from aurora_serve.batch.outputs import read_rows

    cmd = [sys.executable, "-m", "aurora_serve", "batch", str(folder), "-o", str(out), "--device", "cpu",
           "--num-frames", str(args.num_frames), "--token-kept-ratio", str(args.token_kept_ratio),
           "--max-tokens", str(args.max_tokens), "--ignore-eos", "--max-in-flight", str(args.concurrency),
           "--log-every", "15", "--chunk-seconds", "1", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_") or k == "AURORA_CPU_COMPAT"}
    load_before = os.getloadavg()
    with tempfile.NamedTemporaryFile("w+", prefix="bench-batch-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        if stop_after_rows is not None:
            while proc.poll() is None and sum(1 for _ in read_rows(out)) < stop_after_rows:
                time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=args.phase_timeout)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"batch printed no summary (exit {proc.returncode}); log: {log.name}")
    summary = json.loads(lines[-1])
    summary.update(load_average_before=load_before, load_average_after=os.getloadavg(), log=log.name,
                   command=" ".join(cmd[1:]))
    print(f"  {' '.join(extra) or 'in-process'}: {summary['rows']} rows, steady {summary['steady_rows_per_min']} "
          f"rows/min, overall {summary['videos_per_min']} videos/min (exit {summary['exit_status']})", flush=True)
    return summary


def sequential_phase(clips: list[Path], args) -> dict:
    from aurora_serve.ckpt.tiny import cached_tiny

    items = [Media("video", p.read_bytes()) for p in clips]
    load_before = os.getloadavg()
    out = baseline(cached_tiny(), items, args.num_frames, args.token_kept_ratio, args.max_tokens, args.sequential_n)
    out.update(videos_per_min=60 * out["requests_per_s"], load_average_before=load_before,
               load_average_after=os.getloadavg())
    print(f"  sequential: {out['requests']} videos, {out['videos_per_min']:.1f} videos/min", flush=True)
    return out


def resume_phase(folder: Path, work: Path, args) -> dict:
    """SIGTERM the in-process run once a quarter of the rows are written, then the same command again."""
    out = work / "resume.jsonl"
    # Early enough that rows remain after the ones in flight (up to --max-in-flight) finish.
    first = batch_cli(folder, out, args, [], stop_after_rows=max(1, args.clips // 4))
    second = batch_cli(folder, out, args, [])
    from aurora_serve.batch.outputs import read_rows

    ids = [r["id"] for r in read_rows(out)]
    midway = first["stopped_by"] == "SIGTERM" and first["rows"] < args.clips  # else the check proves nothing
    return {"first": first, "second": second, "rows_in_output": len(ids), "distinct_ids": len(set(ids)),
            "rows_redone": second["rows"] - (args.clips - first["rows"]), "stopped_midway": midway,
            "ok": midway and len(ids) == len(set(ids)) == args.clips and second["skipped_done"] == first["rows"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--sequential-n", type=int, default=12, help="clips the sequential loop captions (a stride of all)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--token-kept-ratio", type=float, default=0.2)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--phases", default="sequential,batch,server,ray,resume")
    p.add_argument("--phase-timeout", type=float, default=1800)
    p.add_argument("--quick", action="store_true", help="8 clips, concurrency 4, 8 tokens; no JSON unless --out")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.quick:
        args.clips, args.sequential_n, args.concurrency, args.max_tokens = 8, 2, 4, 8
    out_path = args.out or (None if args.quick else REPO / "benchmarks/results/bench_batch_cpu_tiny.json")
    phases = args.phases.split(",")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = Path(tmp)
        (work / "clips").mkdir()
        clips = make_clips(work / "clips", args.clips, seed=7_000)
        stride = max(1, len(clips) // args.sequential_n)
        print(f"{len(clips)} clips in {work / 'clips'}", flush=True)
        if "sequential" in phases:
            results["sequential"] = sequential_phase(clips[::stride][: args.sequential_n], args)
        if "batch" in phases:
            results["batch"] = batch_cli(work / "clips", work / "batch.jsonl", args, [])
        if "server" in phases:
            server = Server()
            try:
                results["server"] = batch_cli(work / "clips", work / "server.jsonl", args, ["--server", server.base])
            finally:
                server.stop()
        if "ray" in phases:
            results["ray"] = batch_cli(work / "clips", work / "ray.jsonl", args, ["--ray", "--ray-actors", "1"])
        if "resume" in phases:
            results["resume"] = resume_phase(work / "clips", work, args)
    report = {"ratios": ratios(results), "results": results, "config": vars(args) | {"out": str(out_path)},
              "clip_specs": [vars(s) for s in SPECS], "command": command(), **git_state("aurora_serve", "benchmarks"),
              "machine": machine(), "environment": environment()}
    print(json.dumps(report["ratios"], indent=2))
    if out_path is not None:
        out_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {out_path}")


def ratios(results: dict) -> dict:
    def rate(name: str) -> float | None:
        r = results.get(name)
        if r is None:
            return None
        return r["videos_per_min"] if name == "sequential" else r.get("steady_rows_per_min")

    out = {"videos_per_min": {name: rate(name) for name in ("sequential", "batch", "server", "ray")}}
    pairs = {"batch_over_sequential": ("batch", "sequential"), "server_c16_over_sequential": ("server", "sequential"),
             "ray_one_actor_over_batch": ("ray", "batch"), "server_over_batch": ("server", "batch")}
    for name, (a, b) in pairs.items():
        ra, rb = rate(a), rate(b)
        out[name] = ra / rb if ra and rb else None
        if name in TARGETS and out[name] is not None:
            out[name + "_target_met"] = out[name] >= TARGETS[name]
    if "resume" in results:
        out["resume_rows_redone"] = results["resume"]["rows_redone"]
        out["resume_ok"] = results["resume"]["ok"]
    return out


if __name__ == "__main__":
    main()
