"""The seam to ``sglang.Engine``: start it with AuroraCap registered, generate (streamed or not), abort.

The only module outside ``aurora_serve/model`` that imports SGLang. It registers the out-of-tree model and
processor through the ``SGLANG_EXTERNAL_*`` variables (they must be in the environment before SGLang's
spawned scheduler starts), turns on SGLang's CPU engine where CUDA is absent, resolves the checkpoint
(local dir or hub id; either layout) and hands SGLang the config override naming our architecture.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from aurora_serve.ckpt.layout import detect_layout, llava_view, resolve_model_dir, sglang_overrides
from aurora_serve.errors import AuroraError, InvalidRequestError, ModelLoadError, ServiceUnavailableError

logger = logging.getLogger(__name__)
MODEL_PACKAGE = "aurora_serve.model"
ARCH = "AuroraCapForConditionalGeneration"


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs; built by the CLI / server settings, never from the environment here."""

    model_path: str | None = None  # None → the embedded tiny model (built once into tiny_model_dir)
    tiny_model_dir: str = str(Path.home() / ".cache" / "aurora-serve" / "tiny-auroracap")
    device: str = "auto"  # "auto" | "cuda" | "cpu"
    dtype: str = "auto"  # "auto" → float16 on CUDA, float32 on CPU
    context_length: int | None = None
    max_total_tokens: int | None = None
    mem_fraction_static: float | None = None
    max_running_requests: int | None = None
    tp_size: int = 1
    enable_metrics: bool = False
    random_seed: int = 0
    hf_offline: bool = False
    hf_cache_dir: str | None = None
    merge_backend: str = "auto"  # token-merge kernel: "auto" (Triton on CUDA) | "triton" | "reference"
    decode_backend: str = "pyav"  # "pyav" | "decord"
    max_frames: int = 64
    media_cache_mb: int = 512  # processed-media LRU: a repeated video skips decode + preprocessing (0: off)
    default_token_kept_ratio: float = 0.8
    default_num_frames: int = 8
    log_level: str = "warning"
    sglang_args: dict[str, Any] = field(default_factory=dict)  # passed through to sglang.Engine


@dataclass
class GenerateRequest:
    """One generation: a templated prompt (media markers in place) and its media items.

    An item may also carry ``"media_id"``: the media's identity in place of its bytes' digest; with
    ``"data": None`` it names media the processor has cached under that id (see model/processor.py)."""

    prompt: str
    images: list[dict] = field(default_factory=list)  # {"data": bytes|path, "token_kept_ratio": ρ}
    videos: list[dict] = field(default_factory=list)  # {"data": …, "token_kept_ratio": ρ, "num_frames": F}
    sampling_params: dict[str, Any] = field(default_factory=dict)
    rid: str = field(default_factory=lambda: uuid.uuid4().hex)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def register_out_of_tree(device: str) -> None:
    """Put AuroraCap's registration (and CPU mode) into the environment.

    SGLang reads these variables when its modules are first imported (``model_config`` builds its
    multimodal-architecture list at import; ``is_cpu()`` is cached at import), so this must run before any
    ``sglang`` import in this process; spawned scheduler processes inherit it.
    """
    os.environ["SGLANG_EXTERNAL_MODEL_PACKAGE"] = MODEL_PACKAGE
    os.environ["SGLANG_EXTERNAL_MM_PROCESSOR_PACKAGE"] = MODEL_PACKAGE
    os.environ["SGLANG_EXTERNAL_MM_MODEL_ARCH"] = ARCH
    if device == "cpu":
        os.environ["SGLANG_USE_CPU_ENGINE"] = "1"


def _check_registration(device: str) -> None:
    """Fail loudly if SGLang was imported before registration: it would serve AuroraCap as text only."""
    from sglang.srt.configs.model_config import is_multimodal_model
    from sglang.srt.utils import is_cpu

    if not is_multimodal_model([ARCH]) or (device == "cpu") != is_cpu():
        raise RuntimeError(
            "sglang was imported before aurora-serve registered AuroraCap (SGLang reads its SGLANG_EXTERNAL_* and "
            "SGLANG_USE_CPU_ENGINE variables at import time); call aurora_serve.engine.register_out_of_tree(device) "
            "before importing sglang"
        )


def _safe_sigquit(signum, frame):  # a failing child must not SIGKILL the serving process (sglang default)
    logger.error("an SGLang child process failed (SIGQUIT); the engine is no longer healthy")
    AuroraEngine.child_failed = True


class AuroraEngine:
    child_failed = False

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.device = settings.device if settings.device != "auto" else ("cuda" if _cuda_available() else "cpu")
        if self.device == "cpu" and settings.merge_backend == "triton":
            raise ModelLoadError("merge backend 'triton' needs a CUDA device; on CPU use 'auto' or 'reference'")
        self.model_dir = self._model_dir()
        self.layout = detect_layout(self.model_dir)
        register_out_of_tree(self.device)
        _check_registration(self.device)
        import sglang

        # What SGLang reads: the checkpoint itself, or a view of it whose config transformers can load.
        self._view = llava_view(self.model_dir) if self.layout == "hf" else None
        try:
            self.engine = sglang.Engine(**self._engine_kwargs())
        except BaseException as e:
            self._remove_view()
            if not isinstance(e, RuntimeError):
                raise
            # a scheduler that dies while loading reports only its exit code here
            raise ModelLoadError(
                f"the SGLang engine failed to start for {self.model_dir}; the scheduler's error is in the log above ({e})"
            ) from e
        self.tokenizer = self.engine.tokenizer_manager.tokenizer

    def _model_dir(self) -> Path:
        s = self.settings
        if s.model_path is None:
            from aurora_serve.ckpt.tiny import FINGERPRINT_FILE, make_tiny, tiny_fingerprint

            tiny = Path(s.tiny_model_dir)
            stamp = tiny / FINGERPRINT_FILE
            # Rebuilt when the generator changes, so a cached tiny model never outlives the code that made it.
            if not stamp.is_file() or stamp.read_text() != tiny_fingerprint():
                shutil.rmtree(tiny, ignore_errors=True)
                make_tiny(tiny, "xtuner")
            return tiny
        return resolve_model_dir(s.model_path, cache_dir=s.hf_cache_dir, offline=s.hf_offline)

    def _engine_kwargs(self) -> dict[str, Any]:
        s = self.settings
        runtime = {
            "merge_backend": s.merge_backend, "decode_backend": s.decode_backend, "max_frames": s.max_frames,
            "media_cache_mb": s.media_cache_mb, "default_token_kept_ratio": s.default_token_kept_ratio,
            "default_num_frames": s.default_num_frames,
        }
        kw: dict[str, Any] = {
            "model_path": str(self._view or self.model_dir),
            "json_model_override_args": json.dumps(sglang_overrides(self.model_dir, self.layout, runtime)),
            "random_seed": s.random_seed, "tp_size": s.tp_size, "enable_metrics": s.enable_metrics,
            "log_level": s.log_level, "enable_cache_report": True,
        }
        if signal.getsignal(signal.SIGQUIT) is not None:
            kw["custom_sigquit_handler"] = _safe_sigquit
        if self.device == "cpu":
            kw.update(device="cpu", attention_backend="torch_native", disable_cuda_graph=True,
                      dtype="float32" if s.dtype == "auto" else s.dtype, mem_fraction_static=0.05,
                      max_total_tokens=65536,
                      # An idle scheduler otherwise spins a whole core, which the vision tower needs on CPU;
                      # it sleeps in a zmq poll and wakes on the next request.
                      sleep_on_idle=True)
        elif s.dtype != "auto":
            kw["dtype"] = s.dtype
        for name in ("context_length", "max_total_tokens", "mem_fraction_static", "max_running_requests"):
            if getattr(s, name) is not None:
                kw[name] = getattr(s, name)
        return {**kw, **s.sglang_args}

    # --- generation -------------------------------------------------------------------------------------
    def _call_kwargs(self, req: GenerateRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {"prompt": req.prompt, "sampling_params": dict(req.sampling_params), "rid": req.rid}
        if req.images:
            kw["image_data"] = list(req.images)
        if req.videos:
            kw["video_data"] = list(req.videos)
        return kw

    async def generate(self, req: GenerateRequest) -> dict:
        """Non-streaming: SGLang's output dict (``text``, ``output_ids``, ``meta_info``)."""
        try:
            return await self.engine.async_generate(**self._call_kwargs(req))
        except AuroraError:
            raise
        except ValueError as e:  # SGLang's validation (context length, sampling params)
            raise InvalidRequestError(str(e)) from e

    async def stream(self, req: GenerateRequest) -> AsyncIterator[dict]:
        """Streaming: yields SGLang's chunks (cumulative ``text`` in 0.5.23's incremental mode off)."""
        try:
            gen = await self.engine.async_generate(stream=True, **self._call_kwargs(req))
            async for chunk in gen:
                yield chunk
        except AuroraError:
            raise
        except ValueError as e:
            raise InvalidRequestError(str(e)) from e

    def abort(self, rid: str) -> None:
        self.engine.tokenizer_manager.abort_request(rid=rid)

    def check_alive(self) -> None:
        if AuroraEngine.child_failed:
            raise ServiceUnavailableError("the SGLang engine lost a child process")

    def shutdown(self) -> None:
        try:
            self.engine.shutdown()
        finally:
            self._remove_view()

    def _remove_view(self) -> None:
        if self._view is not None:
            shutil.rmtree(self._view, ignore_errors=True)
            self._view = None

