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

from aurora_serve.ckpt.layout import ARCH, detect_layout, llava_view, resolve_model_dir, sglang_overrides
from aurora_serve.config import EngineSettings
from aurora_serve.errors import AuroraError, InvalidRequestError, ModelLoadError, ServiceUnavailableError
from aurora_serve.media.item import MediaItem
from aurora_serve.model.spec import AuroraSpec

logger = logging.getLogger(__name__)
MODEL_PACKAGE = "aurora_serve.model"
__all__ = ["AuroraEngine", "EngineSettings", "GenerateRequest", "register_out_of_tree"]


@dataclass
class GenerateRequest:
    """One generation: a templated prompt (one media marker per item, in order) and its media items.

    Items are ``MediaItem``s (the front end builds them) or what an engine caller has at hand: bytes, a local
    path, a ``data:`` URL or a dict (``MediaPolicy.parse``); the engine turns the latter into ``MediaItem``s
    with its defaults, once, before SGLang sees the request."""

    prompt: str
    images: list[Any] = field(default_factory=list)
    videos: list[Any] = field(default_factory=list)
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
        if self.device == "cpu" and settings.runtime.merge_backend == "triton":
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
        self.context_length = int(self.engine.tokenizer_manager.context_len)  # prompt + completion, in tokens
        # The spec the model and processor read (same config object), for callers that turn visual-token
        # counts back into frames.
        self.spec = AuroraSpec.from_hf_config(self.engine.tokenizer_manager.model_config.hf_config)

    def _model_dir(self) -> Path:
        s = self.settings
        if s.model_path is None:
            from aurora_serve.ckpt.tiny import cached_tiny

            return cached_tiny(s.tiny_model_dir)
        return resolve_model_dir(s.model_path, cache_dir=s.hf_cache_dir, offline=s.hf_offline)

    def _engine_kwargs(self) -> dict[str, Any]:
        s = self.settings
        kw: dict[str, Any] = {
            "model_path": str(self._view or self.model_dir),
            "json_model_override_args": json.dumps(sglang_overrides(self.model_dir, self.layout, s.runtime)),
            "random_seed": s.random_seed, "tp_size": s.tp_size, "enable_metrics": s.enable_sglang_metrics,
            "log_level": s.sglang_log_level, "enable_cache_report": True,
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
            kw["image_data"] = self.media_items("image", req.images)
        if req.videos:
            kw["video_data"] = self.media_items("video", req.videos)
        return kw

    def media_items(self, kind: str, values: list[Any]) -> list[MediaItem]:
        """Engine callers' items as ``MediaItem``s, with this engine's defaults (the front end's pass as they are)."""
        return [self.settings.media.parse(kind, v) for v in values]

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

    def _processor(self):
        """Our multimodal processor, in this process's tokenizer manager (None before SGLang made it)."""
        return getattr(self.engine.tokenizer_manager, "mm_processor", None)

    def frames_sampled(self, rid: str) -> dict[str, list[int]] | None:
        """Frames each media item of request ``rid`` got, by kind in request order (once, after its prefill)."""
        return getattr(self._processor(), "frames_sampled", {}).pop(rid, None)

    def abort(self, rid: str) -> None:
        self.engine.tokenizer_manager.abort_request(rid=rid)

    def check_alive(self) -> None:
        if AuroraEngine.child_failed:
            raise ServiceUnavailableError("the SGLang engine lost a child process")

    def shutdown(self) -> None:
        try:
            # our media workers first: SGLang's shutdown kills every child process of this one
            processor = self._processor()
            if processor is not None and hasattr(processor, "media"):
                processor.media.close()
            self.engine.shutdown()
        finally:
            self._remove_view()

    def _remove_view(self) -> None:
        if self._view is not None:
            shutil.rmtree(self._view, ignore_errors=True)
            self._view = None

