"""One media item, bytes in hand, to the pixels the scheduler receives: the production path, yesterday's and
upstream's, each stage timed in process CPU seconds and wall seconds (bench_media runs them side by side).

Stages: ``identity`` (the media key), ``decode`` (demux, decode, sample; RGB conversion), ``preprocess`` (resize +
crop, and normalisation where the path does it before the hand-off), ``handoff`` (tokenizer → scheduler).

- production: seek decode, each sampled frame resized+cropped as it is decoded (``clip_crop`` as the decode's
  ``transform``), uint8 crops ``[F, 378, 378, 3]``, key = SHA-256 of the bytes (``media_digest``) + sampling
  (model/processor.py ``_prepare``); the scheduler normalises on the model's device (``vision.normalise_crops``,
  timed apart as ``scheduler_normalise``: on a GPU it is a table lookup there, on a CPU-only server it moves here).
- yesterday: seek decode of all sampled frames at full size, then ``clip_preprocess`` → float32 ``[F, 3, 378, 378]``.
- upstream: decode every frame from frame 0 up to the last sampled one (``strategy="sequential"``), transformers'
  ``CLIPImageProcessorPil`` (the Pillow processor upstream's transformers 4.x built; transformers 5's default
  ``CLIPImageProcessor`` is the torchvision one), float32, key = SGLang's hash of the pixel tensor.

The hand-off is measured as SGLang 0.5.23 does it on one node (``handoff``): ``wrap_shm_features`` copies a CPU
feature into POSIX shared memory (``ShmPointerMMData``: create, ``posix_fallocate``, copy), the request pickles a
stub over ZMQ, the scheduler maps the segment copy-on-write and unlinks it; the receiver then reads every page.
Mirrored here (importing SGLang costs ~20 s). Across nodes SGLang pickles the tensor inline: ``handoff_pickle``
times ``pickle.dumps`` (HIGHEST_PROTOCOL, as ``send_pyobj``) → ZMQ PUSH/PULL over ipc:// → ``pickle.loads``.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field, replace
from multiprocessing import shared_memory

import numpy as np
import torch

from aurora_serve.media import seek
from aurora_serve.media.budget import DecodeBudget
from aurora_serve.media.decode import DecodeStats, decode_video
from aurora_serve.media.image import decode_image
from aurora_serve.media.preprocess import CLIP_MEAN, CLIP_STD, clip_crop, clip_preprocess, normalise
from aurora_serve.model.media_cache import media_digest

SIZE = 378


@dataclass(frozen=True)
class Config:
    """How one item is prepared. ``crop``: "per-frame" (as decoded), "at-end" (uint8 crops after decoding all
    sampled frames), "clip_preprocess" (yesterday) or "transformers" (upstream)."""

    name: str
    strategy: str = "seek"
    threads: int = 1
    skip_nonref: bool = True
    crop: str = "per-frame"
    dtype: str = "uint8"  # across the hand-off
    identity: str = "bytes"  # "bytes" (SHA-256 of the media) or "pixels" (SGLang's hash of the tensor)


PRODUCTION = Config("production")
YESTERDAY = Config("yesterday", crop="clip_preprocess", dtype="float32")
UPSTREAM = Config("upstream", strategy="sequential", crop="transformers", dtype="float32", identity="pixels")
VARIANTS = {  # one change each against production (benchmarks/README.md "Media cost")
    "a:skip-off": replace(PRODUCTION, name="a:skip-off", skip_nonref=False),
    "b:threads-2": replace(PRODUCTION, name="b:threads-2", threads=2),
    "b:threads-4": replace(PRODUCTION, name="b:threads-4", threads=4),
    "c:crop-at-end": replace(PRODUCTION, name="c:crop-at-end", crop="at-end"),
    "d:float32": replace(PRODUCTION, name="d:float32", dtype="float32"),
}
CONFIGS = {c.name: c for c in (PRODUCTION, YESTERDAY, UPSTREAM, *VARIANTS.values())}


@dataclass
class Clock:
    """CPU (this process, all threads) and wall seconds per stage."""

    cpu: dict = field(default_factory=dict)
    wall: dict = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.process_time() - cpu, time.perf_counter() - wall)

    def add(self, name: str, cpu: float, wall: float) -> None:
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        self.wall[name] = self.wall.get(name, 0.0) + wall


def timed(fn):
    """``fn()``, and the CPU (this process) and wall seconds it took."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


@contextlib.contextmanager
def nonref_skip(enabled: bool):
    """Benchmark-only knob: with ``enabled=False`` the seek decoder decodes every frame on the way to a sampled
    one (``seek._decoded_frames`` without ``keep_pts`` never sets ``skip_frame``). No package change."""
    if enabled:
        yield
        return
    original = seek._decoded_frames
    seek._decoded_frames = lambda container, stream, budget, keep_pts=None: original(container, stream, budget)
    try:
        yield
    finally:
        seek._decoded_frames = original


_CLIP_PROCESSOR = None


def clip_processor():
    global _CLIP_PROCESSOR  # built once: constructing it is not per-item work
    if _CLIP_PROCESSOR is None:
        import transformers

        _CLIP_PROCESSOR = transformers.CLIPImageProcessorPil(
            size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}, resample=3, do_resize=True,
            do_center_crop=True, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
            image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD), do_convert_rgb=True)
    return _CLIP_PROCESSOR


def _identity(cfg: Config, data: bytes, kind: str, pixels: torch.Tensor | None) -> int:
    if cfg.identity == "pixels":  # SGLang's data_hash: the first 8 bytes of the SHA-256 of the tensor's bytes
        return int.from_bytes(hashlib.sha256(memoryview(pixels.numpy())).digest()[:8], "big")
    key = f"{media_digest(data)}:{kind}:n=8:{SIZE}:pyav"  # processor._key, then _sglang_item's hash of it
    return int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")


def _decode(cfg: Config, data: bytes, kind: str, clock: Clock, stats: DecodeStats):
    """Frames, cropped as decoded when ``cfg.crop == "per-frame"``; the crops' time goes to ``preprocess``."""
    transform = None
    if cfg.crop == "per-frame":
        def transform(frame):
            cpu, wall = time.process_time(), time.perf_counter()
            out = clip_crop(frame, SIZE)
            clock.add("preprocess", time.process_time() - cpu, time.perf_counter() - wall)
            return out
    cpu, wall = time.process_time(), time.perf_counter()
    if kind == "image":
        frames = decode_image(data, budget=DecodeBudget(), transform=transform)
    else:
        with nonref_skip(cfg.skip_nonref):
            frames = decode_video(data, 8, threads=cfg.threads, strategy=cfg.strategy, stats=stats,
                                  budget=DecodeBudget(), transform=transform)
    pre_cpu, pre_wall = clock.cpu.get("preprocess", 0.0), clock.wall.get("preprocess", 0.0)
    clock.add("decode", time.process_time() - cpu - pre_cpu, time.perf_counter() - wall - pre_wall)
    return frames


def prepare(cfg: Config, data: bytes, kind: str, keep_frames: bool = False) -> dict:
    """One item through ``cfg``: the tensor the scheduler gets, and the per-stage CPU / wall seconds."""
    clock, stats = Clock(), DecodeStats()
    if cfg.identity == "bytes":
        with clock.stage("identity"):
            key = _identity(cfg, data, kind, None)
    frames = _decode(cfg, data, kind, clock, stats)
    with clock.stage("preprocess"):
        if cfg.crop == "per-frame":
            pixels = torch.from_numpy(frames)
        elif cfg.crop == "at-end":
            pixels = torch.from_numpy(np.stack([clip_crop(f, SIZE) for f in frames]))
        elif cfg.crop == "clip_preprocess":
            pixels = clip_preprocess(frames, SIZE)
        else:  # channels_last explicitly: transformers guesses the layout from the shape otherwise
            pixels = clip_processor()(list(frames), return_tensors="pt",
                                      input_data_format="channels_last")["pixel_values"]
        if cfg.dtype == "float32" and pixels.dtype == torch.uint8:
            pixels = normalise(pixels.numpy())
    if cfg.identity == "pixels":
        with clock.stage("identity"):
            key = _identity(cfg, data, kind, pixels)
    with clock.stage("handoff"):
        received = shm_handoff(pixels)
    out = {"config": cfg.name, "pixels": received, "key": key, "stats": stats, "clock": clock,
           "handoff_bytes": pixels.numel() * pixels.element_size()}
    if keep_frames and cfg.crop != "per-frame":
        out["frames"] = frames
    return out


# --- the hand-off ----------------------------------------------------------------------------------------------


def _touch(tensor: torch.Tensor) -> int:
    """Read one byte per 4 KiB page: the receiver's first read of the pixels, without extra compute."""
    return int(tensor.reshape(-1).view(torch.uint8)[::4096].sum())


def shm_handoff(tensor: torch.Tensor) -> torch.Tensor:
    """sglang.srt.managers.mm_utils.ShmPointerMMData (0.5.23), sender and receiver, in one process."""
    tensor = tensor.contiguous()
    nbytes = tensor.numel() * tensor.element_size()
    shm = shared_memory.SharedMemory(create=True, size=nbytes)
    try:
        os.posix_fallocate(shm._fd, 0, nbytes)
        dst = torch.frombuffer(shm.buf, dtype=torch.uint8)
        dst.copy_(tensor.view(torch.uint8).reshape(-1))
        del dst
    finally:
        shm.close()
    stub = pickle.dumps({"shm_name": shm.name, "shape": tensor.shape, "dtype": tensor.dtype}, pickle.HIGHEST_PROTOCOL)
    state = pickle.loads(stub)
    handle = shared_memory.SharedMemory(name=state["shm_name"])
    try:
        owned = mmap.mmap(handle._fd, nbytes, access=mmap.ACCESS_COPY)
        received = torch.frombuffer(owned, dtype=state["dtype"]).reshape(state["shape"])
    finally:
        handle.unlink()
        handle.close()
    _touch(received)
    return received


class PickleWire:
    """Inline transport (SGLang across nodes, or SGLANG_USE_PICKLE_IPC with the default transport): pickle the
    tensor, PUSH it over ZMQ ipc://, PULL it and unpickle; ZMQ's I/O thread is part of this process's CPU time."""

    def __init__(self):
        import zmq

        self._dir = tempfile.TemporaryDirectory(prefix="bench-media-zmq-")
        address = f"ipc://{self._dir.name}/wire"
        self._context = zmq.Context()
        self._pull = self._context.socket(zmq.PULL)
        self._pull.bind(address)
        self._push = self._context.socket(zmq.PUSH)
        self._push.connect(address)

    def send(self, tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
        payload = pickle.dumps(tensor, protocol=pickle.HIGHEST_PROTOCOL)
        self._push.send(payload)
        received = pickle.loads(self._pull.recv())
        _touch(received)
        return received, len(payload)

    def close(self) -> None:
        self._push.close(0)
        self._pull.close(0)
        self._context.term()
        self._dir.cleanup()
