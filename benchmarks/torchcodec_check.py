"""torchcodec's CPU decoder beside ours on bench_media's clips: CPU time for the 8 sampled frames, and how far its
frames are from PyAV's. Not part of the package or the lock: torchcodec's PyPI wheels are CUDA builds (every
library links libtorch_cuda, libcudart and libnvrtc) and it uses the system's FFmpeg, so it runs only from a
side environment (benchmarks/README.md, "torchcodec"), with the repository on the path:

    PYTHONPATH=. /tmp/tc/venv/bin/python -m benchmarks.torchcodec_check --out benchmarks/results/torchcodec_cpu.json

Both decoders get the clip's bytes and one thread; the frames are those ``decode_video`` samples (linspace over
T, as upstream). torchcodec runs in ``exact`` seek mode (scans the file for its index, as our decoder does) and in
``approximate`` mode (trusts the header). Rounds alternate the order; medians of process CPU and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import av
import numpy as np
import torch

from aurora_serve.media.decode import DecodeStats, decode_video, sample_indices
from aurora_serve.media.preprocess import clip_crop, normalise

from .media_clips import DEFAULT_CACHE, ClipSpec, ensure
from .media_paths import timed
from .provenance import command, git_state, machine

CLIPS = "h264-360p-10s,h264-1080p-10s,h264-1080p-60s,vp9-1080p-60s,h264-1080p-10min"


def _pyav(data: bytes):
    stats = DecodeStats()
    frames = decode_video(data, 8, threads=1, stats=stats)
    return frames, stats


def _torchcodec(data: bytes, indices: list[int], mode: str) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(data, device="cpu", dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode=mode)
    return decoder.get_frames_at(indices).data.numpy()


def check_clip(name: str, cache_dir: Path, rounds: int) -> dict:
    path, facts = ensure(ClipSpec(*name.split("-")), cache_dir)
    data = path.read_bytes()
    (frames, stats), _, _ = timed(lambda: _pyav(data))
    indices = sample_indices(stats.total_frames, 8)
    runs = {"pyav-seek": lambda: _pyav(data)[0]}
    runs |= {f"torchcodec-{m}": (lambda m=m: _torchcodec(data, indices, m)) for m in ("exact", "approximate")}
    times = {k: {"cpu": [], "wall": []} for k in runs}
    outputs = {}
    for r in range(rounds):
        order = list(runs)[r % len(runs):] + list(runs)[: r % len(runs)]
        for key in order:
            out, cpu, wall = timed(runs[key])
            times[key]["cpu"].append(cpu)
            times[key]["wall"].append(wall)
            outputs[key] = out
    crops = np.stack([clip_crop(f) for f in frames])
    row = {"clip": name, "bytes": facts["bytes"], "total_frames": stats.total_frames, "indices": indices,
           "pyav_frames_decoded": stats.frames_decoded, "methods": {}}
    for key, t in times.items():
        out = outputs[key].astype(np.int16)
        diff = np.abs(out - frames.astype(np.int16)) if out.shape == frames.shape else None
        entry = {"cpu_s": statistics.median(t["cpu"]), "wall_s": statistics.median(t["wall"]),
                 "cpu_by_round_s": [round(x, 4) for x in t["cpu"]], "shape": list(out.shape)}
        if diff is not None:
            theirs = normalise(np.stack([clip_crop(f) for f in outputs[key]]))
            entry |= {"equal_to_pyav": bool(diff.max() == 0), "max_abs_diff_levels": int(diff.max()),
                      "mean_abs_diff_levels": float(diff.mean()), "share_of_values_equal": float((diff == 0).mean()),
                      "max_abs_diff_after_clip_preprocess": float((theirs - normalise(crops)).abs().max())}
        entry["cpu_ratio_vs_pyav"] = entry["cpu_s"] / statistics.median(times["pyav-seek"]["cpu"])
        row["methods"][key] = entry
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default=CLIPS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torchcodec
    from torchcodec._core import get_ffmpeg_library_versions

    load_before, rows = os.getloadavg(), []
    for name in args.clips.split(","):
        rows.append(check_clip(name, args.cache_dir, args.rounds))
        for key, m in rows[-1]["methods"].items():
            print(f"{name:>18} {key:>22} cpu {m['cpu_s'] * 1e3:8.1f} ms ({m['cpu_ratio_vs_pyav']:.2f}x pyav) "
                  f"max diff {m.get('max_abs_diff_levels')} mean {m.get('mean_abs_diff_levels', 0):.3f}", flush=True)
    report = {"benchmark": "torchcodec_check", "command": command(), **git_state("aurora_serve", "benchmarks"),
              "machine": machine(load_average=False), "load_average_before_after": [load_before, os.getloadavg()],
              "versions": {"torch": torch.__version__, "torchcodec": torchcodec.__version__,
                           "torchcodec_ffmpeg": {k: str(v) for k, v in get_ffmpeg_library_versions().items()},
                           "av": av.__version__,
                           "av_ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}},
              "settings": {"rounds": args.rounds, "threads": 1, "num_frames": 8, "source": "bytes in memory"},
              "results": rows}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
