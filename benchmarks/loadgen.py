"""Load generation for aurora-serve: media, workloads, the streaming client, and latency statistics.

Used by ``load_test.py`` (sweeps against a running server) and ``perf_ratios.py`` (side-by-side ratios).
Media is generated here (seeded H.264 clips and JPEG images, cached under a temp directory) and sent inline as
``data:`` URLs, so the server needs no media access. Every request carries ``X-Aurora-Media-Key`` (sha256 of
its media), the key the Kubernetes ingress hashes on (deploy/README.md).

Workloads (``requests(kind, n)``):
  unique         every request a new video: no reuse, each pays decode + vision + prefill
  repeated       one video for every request: after the first, prefix-cache hits (the ``repeat_pool`` videos)
  repeated-uuid  as repeated, but the client names each video by a uuid and sends the uuid alone; on a 400
                 ``media_not_cached`` (not cached yet, or evicted) it sends the url with the uuid, as a client should
  mixed          a ``repeat_share`` of requests draw from a small pool of videos, the rest are unique
  images+videos  alternating unique images and unique videos
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from importlib import metadata
import io
import ipaddress
import platform
import random
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np

from .provenance import command, git_state, machine

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("unique", "repeated", "repeated-uuid", "mixed", "images+videos")
PROMPT = "Describe the video in detail."


# --- media ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    seconds: float = 4.0
    width: int = 480
    height: int = 270
    fps: int = 30


def make_video(seed: int, spec: ClipSpec, cache_dir: Path) -> bytes:
    """A seeded H.264 MP4 (moving texture, key frame every 2 s, B-frames), cached by its parameters."""
    path = cache_dir / f"clip_{seed}_{spec.seconds}s_{spec.width}x{spec.height}_{spec.fps}.mp4"
    if path.exists():
        return path.read_bytes()
    rng = np.random.default_rng(seed)
    w, h = spec.width, spec.height
    tile = rng.integers(0, 256, (h // 8, w // 4, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "superfast", "x264-params": f"keyint={2 * spec.fps}:bframes=2"}
        for i in range(int(spec.seconds * spec.fps)):
            x = (3 * i) % w
            frame = np.ascontiguousarray(tile[:, x : x + w])
            frame[: h // 4, : w // 4] = (seed * 37 + i * 5) % 256  # a changing corner: frames differ per clip
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def make_image(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(10_000 + seed)
    pixels = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


@dataclass
class Media:
    kind: str  # "video" | "image"
    data: bytes
    key: str = ""  # sha256 hex of the bytes
    by_uuid: bool = False  # send the key as the part's uuid, without the url when the server has it

    def __post_init__(self):
        self.key = hashlib.sha256(self.data).hexdigest()

    def data_url(self) -> str:
        mime = "video/mp4" if self.kind == "video" else "image/jpeg"
        return f"data:{mime};base64," + base64.b64encode(self.data).decode()


@dataclass
class MediaFactory:
    clip: ClipSpec = field(default_factory=ClipSpec)
    cache_dir: Path = Path(tempfile.gettempdir()) / "aurora-load-media"
    seed_base: int = 0  # runs that must not share media (and so the cache) use different bases

    def __post_init__(self):
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def video(self, i: int) -> Media:
        return Media("video", make_video(self.seed_base + i, self.clip, self.cache_dir))

    def image(self, i: int) -> Media:
        return Media("image", make_image(self.seed_base + i))


def requests(kind: str, n: int, media: MediaFactory, repeat_share: float = 0.5, repeat_pool: int = 1,
             seed: int = 0) -> list[Media]:
    """``n`` media items, in send order, for a workload (see the module docstring)."""
    rng = random.Random(seed)
    unique = iter(range(1_000, 1_000_000))  # pools use 0..repeat_pool-1; seed_base spacing must exceed this range
    if kind == "unique":
        return [media.video(next(unique)) for _ in range(n)]
    if kind in ("repeated", "repeated-uuid"):
        items = [media.video(i % repeat_pool) for i in range(n)]
        for m in items:
            m.by_uuid = kind == "repeated-uuid"
        return items
    if kind == "mixed":
        return [media.video(rng.randrange(repeat_pool)) if rng.random() < repeat_share else media.video(next(unique))
                for _ in range(n)]
    if kind == "images+videos":
        return [media.image(next(unique)) if i % 2 == 0 else media.video(next(unique)) for i in range(n)]
    raise ValueError(f"unknown workload {kind!r}; expected one of {WORKLOADS}")


# --- target safety -------------------------------------------------------------------------------------------


def check_loopback(base_url: str, allow_remote: bool) -> None:
    """Refuse a target that resolves to anything but loopback, unless explicitly allowed."""
    host = urlparse(base_url).hostname
    if not host:
        raise SystemExit(f"no host in {base_url!r}")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as e:
        raise SystemExit(f"cannot resolve {host!r}: {e}") from None
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote and not allow_remote:
        raise SystemExit(f"{host} resolves to non-loopback {remote}: pass --allow-remote to load a remote server")


# --- one request ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    start: float
    first: float | None = None  # first content token
    end: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    visual_tokens: int = 0
    error: str | None = None
    resent: bool = False  # repeated-uuid: the uuid alone was refused (not cached) and the url was sent

    @property
    def ok(self) -> bool:
        return self.error is None and self.end is not None


def error_type(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"http_{status}" if status is not None else type(exc).__name__


async def chat_once(client, model: str, item: Media, *, max_tokens: int, num_frames: int, ratio: float,
                    ignore_eos: bool, prompt: str = PROMPT) -> Result:
    """One streamed chat completion; timings from the first byte sent to the last chunk received."""
    import openai

    extra = {"token_kept_ratio": ratio, "ignore_eos": ignore_eos}
    if item.kind == "video":
        extra["num_frames"] = num_frames
    result = Result(item.kind, time.perf_counter())

    def create(with_url: bool):
        part = {"type": f"{item.kind}_url"}
        if with_url:
            part[f"{item.kind}_url"] = {"url": item.data_url()}
        if item.by_uuid:
            part["uuid"] = item.key
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": [part, {"type": "text", "text": prompt}]}],
            max_tokens=max_tokens, temperature=0, stream=True, stream_options={"include_usage": True},
            extra_body=extra, extra_headers={"X-Aurora-Media-Key": item.key})

    try:
        try:
            stream = await create(with_url=not item.by_uuid)
        except openai.BadRequestError as exc:
            if not item.by_uuid or exc.code != "media_not_cached":
                raise
            result.resent = True
            stream = await create(with_url=True)
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].delta.content:
                result.first = result.first or now
                result.chunk_times.append(now)
            if chunk.usage is not None:
                u = chunk.usage
                result.prompt_tokens, result.completion_tokens = u.prompt_tokens, u.completion_tokens
                details = u.prompt_tokens_details
                result.cached_tokens = (details.cached_tokens or 0) if details else 0
                result.visual_tokens = int((u.model_extra or {}).get("visual_tokens", 0))
        result.end = time.perf_counter()
    except Exception as exc:  # every failure is counted by type; the run goes on
        result.error = error_type(exc)
    return result


# --- statistics ----------------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    a = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def summarize(results: list[Result], wall_s: float) -> dict:
    """Latency percentiles (s), throughput over the wall time, and errors by type."""
    ok = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error or "incomplete"] = errors.get(r.error or "incomplete", 0) + 1
    ttft = [r.first - r.start for r in ok if r.first]
    e2e = [r.end - r.start for r in ok]
    tpot = [(r.end - r.first) / (r.completion_tokens - 1) for r in ok if r.first and r.completion_tokens > 1]
    itl = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:])]
    out_tokens = sum(r.completion_tokens for r in ok)
    prompt_tokens = sum(r.prompt_tokens for r in ok)
    return {
        "requests": len(results), "ok": len(ok), "errors": errors, "wall_s": wall_s,
        "resent_with_url": sum(r.resent for r in results),
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else 0.0,
        "output_tokens_per_s": out_tokens / wall_s if wall_s > 0 else 0.0,
        "visual_tokens_per_s": sum(r.visual_tokens for r in ok) / wall_s if wall_s > 0 else 0.0,
        "output_tokens": out_tokens, "prompt_tokens": prompt_tokens,
        "cached_prompt_share": sum(r.cached_tokens for r in ok) / prompt_tokens if prompt_tokens else 0.0,
        "ttft_s": percentiles(ttft), "tpot_s": percentiles(tpot), "itl_s": percentiles(itl), "e2e_s": percentiles(e2e),
    }


# --- provenance ----------------------------------------------------------------------------------------------


def environment() -> dict:
    versions = {"python": platform.python_version(), "av": av.__version__, "numpy": np.__version__}
    for name in ("torch", "sglang", "openai", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        **git_state("aurora_serve", "benchmarks"),
        "machine": machine(),
        "versions": versions,
        "command": command(),
    }


async def gather_bounded(coros, concurrency: int, timeout: float | None = None):
    """Run coroutine factories with at most ``concurrency`` in flight, in order of submission. Past
    ``timeout`` seconds, what has not finished is cancelled and comes back as ``Result(error="deadline")``."""
    semaphore = asyncio.Semaphore(concurrency)
    deadline = None if timeout is None else time.perf_counter() + timeout

    async def one(factory):
        async with semaphore:
            start = time.perf_counter()
            if deadline is None:
                return await factory()
            try:
                return await asyncio.wait_for(factory(), max(0.0, deadline - start))
            except TimeoutError:
                return Result("video", start, error="deadline")

    return await asyncio.gather(*(one(c) for c in coros))
