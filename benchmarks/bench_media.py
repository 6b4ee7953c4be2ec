"""Benchmark: media cost per item (issue 17): the production path beside yesterday's and upstream's, in one run.

Each item starts as bytes in hand (no network: the fetch stage is the bytes already in memory) and ends as the
tensor the scheduler receives (stages and paths: ``media_paths``). Clips: generated H.264 / VP9 at 360p, 720p,
1080p, 10 s, 60 s and 10 min, key frame every 2 s, 8 frames sampled, and a 1000x667 JPEG (``media_clips``;
cached outside the repo). Every configuration runs once per round on the same bytes, in an order rotated each
round; the numbers are medians over rounds and the ratios are between medians of the same run. CPU time is this
process's (all threads, ``time.process_time``); wall time is what a request waits and moves with the machine's
load (recorded before and after). Round 0 also checks that every path yields the same pixels.

Configurations: production, yesterday, upstream, and one change each against production: a:skip-off (decode
non-reference frames too), b:threads-2/-4 (decoder threads), c:crop-at-end (crop after decoding all sampled frames),
d:float32 (normalise before the hand-off). ``--workers 1,2`` then prepares ``--worker-items`` items of one clip
with a ProcessPoolExecutor of 1 and of 2 processes running the production per-item function (the hook for a
media process pool).

    .venv/bin/python -m benchmarks.bench_media                      # H.264 360p-1080p x 10 s/60 s + JPEG
    .venv/bin/python -m benchmarks.bench_media --codecs h264,vp9 --durations 10s,60s,10min
    .venv/bin/python -m benchmarks.bench_media --smoke --out /tmp/m.json   # tiny clips, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import warnings
from pathlib import Path

import av
import numpy as np
import torch

from aurora_serve.media.preprocess import clip_crop, normalise

from .media_clips import DEFAULT_CACHE, DURATIONS, JPEG, ClipSpec, ensure
from .media_paths import CONFIGS, PickleWire, prepare, timed
from .media_workers import run_workers
from .provenance import REPO, command, git_state, machine, relative

TARGET_CLIP = "h264-1080p-60s"
TARGET_CPU_RATIO, TARGET_BYTES, TARGET_WORKER_SPEEDUP = 1 / 3, 3.5e6, 1.8
LONG_CLIP_S = 120  # upstream's sequential decode runs in one round only on clips longer than this
STAGES = ("identity", "decode", "preprocess", "handoff")


def _sample(out: dict, wire: PickleWire, normalise_crops) -> dict:
    """One run's numbers: stages, totals, and the costs beside the path (inline pickle, scheduler normalise)."""
    clock, pixels = out["clock"], out["pixels"]
    (_, pickled), p_cpu, p_wall = timed(lambda: wire.send(pixels))
    rec = {"cpu": clock.cpu, "wall": clock.wall, "cpu_total": sum(clock.cpu.values()),
           "wall_total": sum(clock.wall.values()), "frames_decoded": out["stats"].frames_decoded,
           "handoff_bytes": out["handoff_bytes"], "pickle_bytes": pickled, "pickle_cpu": p_cpu, "pickle_wall": p_wall}
    if pixels.dtype == torch.uint8:  # the scheduler's table lookup, on CPU here (on the model's device in serving)
        _, rec["scheduler_normalise_cpu"], rec["scheduler_normalise_wall"] = timed(lambda: normalise_crops(pixels))
    return rec


def _checks(first: dict, normalise_crops) -> dict:
    """Round 0: every path's pixels against production's crops (exact), and the brief's own check."""
    crops = first["production"]["pixels"]
    reference = normalise(crops.numpy())
    out = {"production_key_equals_yesterday_key": first["production"]["key"] == first["yesterday"]["key"],
           "scheduler_normalise_equals_yesterday": torch.equal(normalise_crops(crops), first["yesterday"]["pixels"])}
    if "frames" in first["yesterday"]:
        again = np.stack([clip_crop(f) for f in first["yesterday"]["frames"]])
        out["production_crops_equal_clip_crop_of_yesterday_frames"] = bool(np.array_equal(again, crops.numpy()))
    for name, o in first.items():
        want = crops if o["pixels"].dtype == torch.uint8 else reference
        out[f"{name}_equal"] = torch.equal(o["pixels"], want)
        out[f"{name}_max_abs_diff"] = float((o["pixels"].float() - want.float()).abs().max())
    return out


def _summary(name: str, samples: list[dict]) -> dict:
    med = lambda key: statistics.median(s[key] for s in samples)  # noqa: E731
    row = {"config": name, "rounds": len(samples), "cpu_s": med("cpu_total"), "wall_s": med("wall_total"),
           "cpu_by_round_s": [round(s["cpu_total"], 4) for s in samples],
           "wall_by_round_s": [round(s["wall_total"], 4) for s in samples],
           "stage_cpu_s": {k: statistics.median(s["cpu"].get(k, 0.0) for s in samples) for k in STAGES},
           "stage_wall_s": {k: statistics.median(s["wall"].get(k, 0.0) for s in samples) for k in STAGES}}
    for key in ("frames_decoded", "handoff_bytes", "pickle_bytes", "pickle_cpu", "pickle_wall",
                "scheduler_normalise_cpu", "scheduler_normalise_wall"):
        if key in samples[0]:
            row[key] = med(key)
    return row


def run_clip(spec: ClipSpec, data: bytes, names: list[str], rounds: int, wire, normalise_crops) -> tuple:
    """All configurations on one item, ``rounds`` times in rotated order; summaries and round-0 checks."""
    samples: dict[str, list] = {n: [] for n in names}
    checks, long_clip = {}, spec.kind == "video" and DURATIONS[spec.duration] > LONG_CLIP_S
    for r in range(rounds):
        first = {}
        for name in names[r % len(names):] + names[: r % len(names)]:
            if name == "upstream" and long_clip and r > 0:
                continue
            out = prepare(CONFIGS[name], data, spec.kind, keep_frames=r == 0)
            samples[name].append(_sample(out, wire, normalise_crops))
            if r == 0:
                first[name] = out
        if r == 0:
            checks = _checks(first, normalise_crops)
        print(f"  {spec.name} round {r + 1}/{rounds} load {os.getloadavg()[0]:.1f}", flush=True)
    rows = [_summary(n, samples[n]) for n in names]
    base = {r["config"]: r for r in rows}
    for row in rows:
        for ref in ("yesterday", "upstream"):
            row[f"cpu_ratio_vs_{ref}"] = row["cpu_s"] / base[ref]["cpu_s"]
            row[f"wall_ratio_vs_{ref}"] = row["wall_s"] / base[ref]["wall_s"]
        row["cpu_ratio_vs_production"] = row["cpu_s"] / base["production"]["cpu_s"]
        row["wall_ratio_vs_production"] = row["wall_s"] / base["production"]["wall_s"]
    return rows, checks


def _print(clip: str, rows: list[dict]) -> None:
    print(f"{clip}: {'config':>14} {'cpu ms':>8} {'wall ms':>8} | cpu ms: {'ident':>6} {'decode':>7} {'prep':>6} "
          f"{'handoff':>7} | {'decoded':>7} {'MB':>5} {'pickle ms':>9} {'cpu/yest':>8} {'cpu/prod':>8}")
    for r in rows:
        s = r["stage_cpu_s"]
        print(f"{'':>{len(clip) + 1}} {r['config']:>14} {r['cpu_s'] * 1e3:>8.1f} {r['wall_s'] * 1e3:>8.1f} | "
              f"{'':>7} {s['identity'] * 1e3:>6.1f} {s['decode'] * 1e3:>7.1f} {s['preprocess'] * 1e3:>6.1f} "
              f"{s['handoff'] * 1e3:>7.1f} | {r['frames_decoded']:>7} {r['handoff_bytes'] / 1e6:>5.2f} "
              f"{r['pickle_cpu'] * 1e3:>9.1f} {r['cpu_ratio_vs_yesterday']:>8.2f} {r['cpu_ratio_vs_production']:>8.2f}")


def _specs(args) -> list[ClipSpec]:
    specs = [ClipSpec(c, s, d) for c in args.codecs.split(",") if c for s in args.sizes.split(",") if s
             for d in args.durations.split(",") if d]
    specs += [ClipSpec(*name.split("-")) for name in args.clips.split(",") if name]  # codec-size-duration
    return specs + ([JPEG] if args.jpeg else [])


def _targets(results: list[dict], workers: dict | None) -> dict:
    rows = {r["config"]: r for clip in results if clip["clip"]["name"] == TARGET_CLIP for r in clip["rows"]}
    out = {"clip": TARGET_CLIP}
    if rows:
        ratio = rows["production"]["cpu_s"] / rows["yesterday"]["cpu_s"]
        out |= {"cpu_ratio_vs_yesterday": round(ratio, 3), "cpu_target_one_third_met": ratio <= TARGET_CPU_RATIO,
                "handoff_bytes": rows["production"]["handoff_bytes"],
                "bytes_target_3.5MB_met": rows["production"]["handoff_bytes"] <= TARGET_BYTES}
    if workers and "speedup_2_vs_1" in workers:
        out |= {"workers_clip": workers["clip"], "workers_speedup_2_vs_1": workers["speedup_2_vs_1"],
                "workers_target_1.8x_met": workers["speedup_2_vs_1"] >= TARGET_WORKER_SPEEDUP}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny 2 s clips (H.264, VP9) + JPEG, 1 round")
    parser.add_argument("--codecs", default="h264")
    parser.add_argument("--sizes", default="360p,720p,1080p")
    parser.add_argument("--durations", default="10s,60s")
    parser.add_argument("--clips", default="", help="more clips by name, e.g. h264-1080p-10min (after the others)")
    parser.add_argument("--no-jpeg", dest="jpeg", action="store_false")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"subset of {','.join(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", default="1,2", help="pool sizes to compare ('' to skip)")
    parser.add_argument("--worker-clip", default=TARGET_CLIP, help="clip name for the workers dimension")
    parser.add_argument("--worker-items", type=int, default=8)
    parser.add_argument("--worker-rounds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: results/bench_media_cpu.json; "
                        "none for --smoke)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.codecs, args.sizes, args.durations, args.rounds = "h264,vp9", "tiny", "2s", 1
        args.worker_clip, args.worker_items, args.worker_rounds = "h264-tiny-2s", 2, 1
    out_path = args.out or (None if args.smoke else REPO / "benchmarks/results/bench_media_cpu.json")
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    from aurora_serve.model.vision import normalise_crops

    names = [n for n in CONFIGS if n in args.configs.split(",")]
    for required in ("production", "yesterday", "upstream"):
        names = names if required in names else [required, *names]
    load_before, results, clips, wire = os.getloadavg(), [], {}, PickleWire()
    try:
        for spec in _specs(args):
            path, facts = ensure(spec, args.cache_dir)
            clips[spec.name] = (path, spec.kind)
            data = path.read_bytes()
            used = [n for n in names if spec.kind == "video" or not n.startswith(("a:", "b:"))]
            if not results:  # first-call costs (transformers' import, allocator) counted nowhere
                for n in used:
                    prepare(CONFIGS[n], data, spec.kind)
            load = os.getloadavg()
            rows, checks = run_clip(spec, data, used, args.rounds, wire, normalise_crops)
            results.append({"clip": facts, "rows": rows, "checks": checks,
                            "load_average_before_after": [load, os.getloadavg()]})
            _print(spec.name, rows)
    finally:
        wire.close()
    workers = None
    if args.workers and args.worker_clip in clips:
        counts = [int(n) for n in args.workers.split(",")]
        workers = run_workers(*clips[args.worker_clip], counts, args.worker_items, args.worker_rounds)
        print(json.dumps({k: v for k, v in workers.items() if not isinstance(v, list)}))
    report = {
        "benchmark": "bench_media", "command": (command(relative(sys.executable)) if argv is None else
                                                " ".join([relative(sys.executable), "-m", __name__, *argv])),
        **git_state("aurora_serve", "benchmarks"), "machine": machine(load_average=False),
        "versions": {"python": platform.python_version(), "av": av.__version__, "torch": torch.__version__,
                     "numpy": np.__version__,
                     "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}},
        "settings": {"rounds": args.rounds, "configs": names, "num_frames": 8, "source": "bytes in memory",
                     "long_clip_upstream_rounds": 1, "long_clip_s": LONG_CLIP_S},
        "load_average_before_after": [load_before, os.getloadavg()],
        "results": results, "workers": workers, "targets": _targets(results, workers),
    }
    print(json.dumps(report["targets"]))
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out_path}")
    return report


if __name__ == "__main__":
    main()
