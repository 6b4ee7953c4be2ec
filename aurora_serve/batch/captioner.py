"""Captions on the in-process engine: ``EngineBackend`` (one task → one ``AuroraEngine.generate``) and
``Captioner``, the Python API.

    from aurora_serve import Captioner

    with Captioner(device="cpu") as captioner:              # the embedded tiny model without model_path
        rows = captioner.caption(["clip.mp4", "https://example.com/b.jpg",
                                  {"path": "long.mp4", "fps": 1, "max_frames": 16, "start": 10, "end": 40}])
        for row in captioner.stream(paths):                   # as they finish, many in flight
            print(row["id"], row["caption"], row["error"])

A row is what ``aurora-serve batch`` writes (``outputs.RESULT_COLUMNS``); a bad item gives a row whose
``error`` says why, never an exception. SGLang's tokenizer manager lives on the engine's event loop, so the
calls drive that loop and must come from the thread that made the ``Captioner``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Iterator

from aurora_serve.batch.backend import Backend, FatalError, item_task
from aurora_serve.batch.tasks import Defaults, Task
from aurora_serve.config import engine_settings
from aurora_serve.errors import AuroraError
from aurora_serve.media.fetch import FetchLimits
from aurora_serve.media.item import MediaItem

DEFAULT_MAX_TOKENS = 2048  # upstream inference.py's max_new_tokens, as the server's default


class EngineBackend(Backend):
    def __init__(self, engine, sampling: dict[str, Any], limits: FetchLimits | None = None, model: str | None = None):
        super().__init__(engine.settings.media, limits or FetchLimits(), sampling)
        self.engine = engine
        self.model = model or engine.settings.model_path or "auroracap-tiny"

    async def start(self) -> None:
        # SGLang binds its tokenizer manager to the loop of the first request and takes SIGTERM there; binding
        # it now lets the run's own signal handlers, installed next, replace SGLang's.
        self.engine.engine.tokenizer_manager.auto_create_handle_loop()

    async def generate(self, task: Task, item: MediaItem, prompt: str) -> dict[str, Any]:
        from aurora_serve.api.engine_output import finish_reason_of
        from aurora_serve.engine import GenerateRequest
        from aurora_serve.model.prompt import caption_prompt

        request = GenerateRequest(prompt=caption_prompt(self.engine.tokenizer, item.kind, prompt),
                                  images=[item] if item.kind == "image" else [],
                                  videos=[item] if item.kind == "video" else [], sampling_params=dict(self.sampling))
        try:
            out = await self.engine.generate(request)
        except asyncio.CancelledError:
            self.engine.abort(request.rid)  # SGLang keeps generating a request nobody awaits otherwise
            raise
        except AuroraError:
            raise
        except Exception as e:
            self._check_alive(e)
            raise
        meta = out["meta_info"]
        visual = int(meta.get("video_tokens") or 0) + int(meta.get("image_tokens") or 0)
        sampled = (self.engine.frames_sampled(request.rid) or {}).get(item.kind) or [None]
        frames = sampled[0] if sampled[0] is not None else \
            visual // self.engine.spec.vision.tokens_per_frame(item.token_kept_ratio)
        return {"caption": out["text"].strip(), "finish_reason": finish_reason_of(meta), "frames": frames,
                "visual_tokens": visual, "prompt_tokens": meta.get("prompt_tokens"),
                "completion_tokens": meta.get("completion_tokens")}

    def _check_alive(self, cause: Exception) -> None:
        try:
            self.engine.check_alive()
        except AuroraError as e:
            raise FatalError(e.message) from cause


class Captioner:
    """AuroraCap on an in-process engine. ``model_path`` None: the embedded tiny model. ``engine_options``: any
    engine setting by name (``device``, ``dtype``, ``max_frames``, ``default_num_frames``, ``merge_backend``,
    ``sglang_args``…). ``prompt``, ``token_kept_ratio``, ``num_frames``, ``fps``, ``max_frames`` set every item's
    defaults (an item's own keys win); ``window_seconds`` splits each video into windows, a row each.
    ``engine``: an ``AuroraEngine`` the caller owns (not shut down by ``close``)."""

    def __init__(self, model_path: str | None = None, *, prompt: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                 temperature: float = 0.0, top_p: float = 1.0, max_in_flight: int = 16, window_seconds: float | None = None,
                 token_kept_ratio: float | None = None, num_frames: int | None = None, fps: float | None = None,
                 fetch_limits: FetchLimits | None = None, engine=None, **engine_options: Any):
        self._owned = engine is None
        if engine is None:
            from aurora_serve.engine import AuroraEngine

            engine = AuroraEngine(engine_settings(model_path=model_path, **engine_options))
        self.engine = engine
        sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_tokens}
        self.backend = EngineBackend(engine, sampling, fetch_limits)
        self.defaults = Defaults(prompt=prompt, token_kept_ratio=token_kept_ratio, num_frames=num_frames, fps=fps,
                                 window_seconds=window_seconds)
        self.max_in_flight = max_in_flight

    def __enter__(self) -> "Captioner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owned and self.engine is not None:
            self.engine.shutdown()
        self.engine = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.engine.engine.loop

    def stream(self, items: Iterable[Any]) -> Iterator[dict[str, Any]]:
        """Rows as they finish (items read lazily, ``max_in_flight`` at a time); a video with windows gives a
        row per window."""
        for _, row in self._rows(items):
            yield row

    def caption(self, items: Iterable[Any]) -> list[dict[str, Any]]:
        """Rows in input order (a windowed video's rows in window order)."""
        done = sorted(self._rows(items), key=lambda pair: (pair[0], pair[1]["start"] or 0.0))
        return [row for _, row in done]

    def _rows(self, items: Iterable[Any]) -> Iterator[tuple[int, dict[str, Any]]]:
        from aurora_serve.batch.runner import run_tasks

        tasks = (item_task(value, self.defaults) for value in items)
        rows = run_tasks(tasks, self.backend, max_in_flight=self.max_in_flight,
                         window_seconds=self.defaults.window_seconds)
        try:
            while True:
                try:
                    yield self.loop.run_until_complete(rows.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self.loop.run_until_complete(rows.aclose())
