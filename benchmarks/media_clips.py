"""Generated media for bench_media: H.264 / VP9 clips and a JPEG, made once into a cache dir outside the repo.

Content is a moving diagonal gradient (luma and chroma drift a few pixels per frame): it encodes fast, which is
what makes a 10-minute 1080p clip affordable here, but it also decodes faster than camera footage, so decode's
share of the per-item cost is understated (compare paths and ratios, not absolute times). 30 fps, a key frame
every 2 s. H.264: libx264 ``superfast`` with 3 B-frames (as bench_decode), MP4. VP9: libvpx-vp9 realtime
(cpu-used 8, no alt-ref frames, so every frame is a reference), WebM.

Clips longer than 60 s are the 60 s clip repeated by stream copy (packets re-timed, no re-encoding): every GOP
starts at a key frame (x264: fixed keyint, no scene cut, closed GOPs), so the result decodes exactly as one long
encode of periodic content would, and a 10-minute clip costs seconds instead of an hour of encoding on this
machine. ``generated_s`` / ``generated_cpu_s`` record what each file took (wall / process CPU).

    .venv/bin/python -m benchmarks.media_clips --sizes 1080p --durations 10s   # make (or list) clips
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

FPS, GOP_SECONDS, CONTENT = 30, 2, "gradient-v1"
SIZES = {"tiny": (160, 90), "360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
DURATIONS = {"2s": 2, "10s": 10, "60s": 60, "10min": 600}
CODECS = ("h264", "vp9")
DEFAULT_CACHE = Path.home() / ".cache" / "aurora-serve" / "bench-media"


@dataclass(frozen=True)
class ClipSpec:
    codec: str  # "h264", "vp9" or "jpeg"
    size: str  # a SIZES key, or "1000x667" for the JPEG
    duration: str  # a DURATIONS key, "" for the JPEG

    @property
    def name(self) -> str:
        return "jpeg-1000x667" if self.codec == "jpeg" else f"{self.codec}-{self.size}-{self.duration}"

    @property
    def kind(self) -> str:
        return "image" if self.codec == "jpeg" else "video"


JPEG = ClipSpec("jpeg", "1000x667", "")


def _filename(spec: ClipSpec) -> str:
    ext = {"h264": "mp4", "vp9": "webm", "jpeg": "jpg"}[spec.codec]
    return f"{spec.name}-{CONTENT}-gop{GOP_SECONDS}s.{ext}"


def _gradient(h: int, w: int, period: int, scale: float) -> np.ndarray:
    """``(h, w + period)`` uint8 diagonal ramp, periodic along x, so a window sliding by whole pixels wraps."""
    yy, xx = np.mgrid[0:h, 0 : w + period]
    return ((xx % period) * (256 / period) * scale + yy * (64 / h)).astype(np.uint8)


def _frames(width: int, height: int, count: int):
    """yuv420p planes ``(h * 3 / 2, w)`` of the moving gradient, one per frame."""
    luma = _gradient(height, width, 512, 1.0)
    cb = _gradient(height // 2, width // 2, 256, 0.5) + 64
    cr = np.ascontiguousarray(_gradient(height // 2, width // 2, 256, 0.5)[:, ::-1]) + 96
    for i in range(count):
        x, xc = (4 * i) % 512, (2 * i) % 256
        yield np.concatenate([luma[:, x : x + width].reshape(-1), cb[:, xc : xc + width // 2].reshape(-1),
                              cr[:, xc : xc + width // 2].reshape(-1)]).reshape(height * 3 // 2, width)


def _encode(spec: ClipSpec, path: Path) -> None:
    width, height = SIZES[spec.size]
    keyint = GOP_SECONDS * FPS
    with av.open(str(path), "w", format="mp4" if spec.codec == "h264" else "webm") as out:
        if spec.codec == "h264":
            stream = out.add_stream("libx264", rate=FPS)
            stream.options = {"preset": "superfast", "crf": "23",
                              "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3"}
        else:
            stream = out.add_stream("libvpx-vp9", rate=FPS)
            stream.options = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "36", "b": "0",
                              "g": str(keyint), "keyint_min": str(keyint), "auto-alt-ref": "0",
                              "lag-in-frames": "0"}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for planes in _frames(width, height, DURATIONS[spec.duration] * FPS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _jpeg(path: Path) -> None:
    """1000x667 RGB: gradients plus seeded noise (a photo-like JPEG of ~100-200 kB at quality 90)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:667, 0:1000]
    rgb = np.stack([xx * 255 // 999, yy * 255 // 666, (xx + yy) % 256], axis=-1) + rng.integers(-12, 13, (667, 1000, 3))
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path, format="JPEG", quality=90)


def _repeat(source: Path, times: int, path: Path) -> None:
    """``source`` played ``times`` times in a row, by stream copy: each copy's packets shifted by its length."""
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4" if path.suffix == ".mp4" else "webm") as out:
        template = src.streams.video[0]
        stream = out.add_stream_from_template(template)
        shift = round(DURATIONS["60s"] / template.time_base)
        for n in range(times):
            src.seek(0)
            for packet in src.demux(template):
                if packet.size == 0:
                    continue
                packet.pts, packet.dts = packet.pts + n * shift, packet.dts + n * shift
                packet.stream = stream
                out.mux(packet)


def ensure(spec: ClipSpec, cache_dir: Path) -> tuple[Path, dict]:
    """The clip's path (generated unless cached) and its facts: bytes, and the seconds generating it took
    (recorded beside the clip the first time, so a later run still reports it)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / _filename(spec)
    meta_path = path.with_name(path.name + ".json")
    if not path.exists():
        partial = path.with_name(".partial-" + path.name)
        start, start_cpu = time.perf_counter(), time.process_time()
        if spec.codec == "jpeg":
            _jpeg(partial)
        elif DURATIONS[spec.duration] > 60 and DURATIONS[spec.duration] % 60 == 0:
            source, _ = ensure(ClipSpec(spec.codec, spec.size, "60s"), cache_dir)
            start, start_cpu = time.perf_counter(), time.process_time()
            _repeat(source, DURATIONS[spec.duration] // 60, partial)
        else:
            _encode(spec, partial)
        meta = {"generated_s": round(time.perf_counter() - start, 1),
                "generated_cpu_s": round(time.process_time() - start_cpu, 1), "generated_at": time.strftime("%F %T")}
        if spec.codec != "jpeg" and DURATIONS[spec.duration] > 60:
            meta["made_by"] = "stream copy of the 60 s clip"
        meta_path.write_text(json.dumps(meta))
        partial.rename(path)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    facts = {**asdict(spec), "name": spec.name, "path": str(path), "bytes": path.stat().st_size, **meta}
    if spec.codec != "jpeg":
        facts.update(fps=FPS, gop_frames=GOP_SECONDS * FPS, content=CONTENT)
    return path, facts


def main() -> None:
    parser = argparse.ArgumentParser(description="make the bench_media clips")
    parser.add_argument("--codecs", default="h264")
    parser.add_argument("--sizes", default="360p,720p,1080p")
    parser.add_argument("--durations", default="10s,60s")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    for codec in args.codecs.split(","):
        for size in args.sizes.split(","):
            for duration in args.durations.split(","):
                _, facts = ensure(ClipSpec(codec, size, duration), args.cache_dir)
                print(json.dumps({k: facts[k] for k in ("name", "bytes", "generated_s") if k in facts}), flush=True)


if __name__ == "__main__":
    main()
