"""What the in-process engine and ``--server`` share: load a task's media, plan its windows, check its options,
and turn a caption or an error into the output row. Subclasses implement ``generate`` only.

Errors: a failure that belongs to the row (bad media, a bad option, a URL that cannot be fetched, a 4xx from the
server, or an unexpected exception while handling that row) becomes the row's ``error`` and the run goes on.
``FatalError`` (the engine lost a process, the server is unreachable or keeps refusing) ends the run instead:
its rows are not written, so a rerun does them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aurora_serve.batch.tasks import ROW_COLUMNS, Defaults, Task, make_task, plan_windows, resolve_source, window_task
from aurora_serve.errors import AuroraError, MediaError
from aurora_serve.media.fetch import FetchLimits, fetch_media
from aurora_serve.media.item import MediaItem, MediaPolicy

logger = logging.getLogger(__name__)
DEFAULT_PROMPTS = {"video": "Describe the video in detail.", "image": "Describe the image in detail."}
RESULT_FIELDS = ("caption", "finish_reason", "frames", "visual_tokens", "prompt_tokens", "completion_tokens")


class FatalError(Exception):
    """The run cannot go on (the engine or the server is gone); the row that met it is not written."""


class Backend:
    """Turns tasks into output rows. ``policy`` checks options as the server does; ``limits`` guard URL fetches."""

    model = ""
    fetch_local_bytes = False  # True: local files are read into memory (to send them elsewhere)

    def __init__(self, policy: MediaPolicy, limits: FetchLimits, sampling: dict[str, Any]):
        self.policy, self.limits, self.sampling = policy, limits, sampling

    async def generate(self, task: Task, item: MediaItem, prompt: str) -> dict[str, Any]:
        """The caption of one checked item: ``RESULT_FIELDS``. Raises AuroraError (row) or FatalError (run)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Called on the run's event loop before the first row (connect, bind to the loop)."""

    async def close(self) -> None:
        """Release what the backend holds (clients); the engine itself belongs to its owner."""

    # --- media --------------------------------------------------------------------------------------------
    async def load(self, task: Task) -> bytes | str:
        """The media: bytes (URLs, in-memory items, or every local file when ``fetch_local_bytes``) or a path."""
        if task.data is not None:
            return task.data
        if "://" in task.source or task.source.startswith("data:"):
            return await fetch_media(task.source, self.limits)  # the server's guard: SSRF policy, byte/time caps
        if not os.path.isfile(task.source):
            raise MediaError(f"media file not found: {task.source}")
        if self.fetch_local_bytes:
            return await asyncio.to_thread(_read, task.source, self.limits.max_bytes)
        return task.source

    async def expand(self, task: Task, seconds: float) -> tuple[list[Task], bytes | str]:
        """A video task → one task per ``seconds`` window (an image stays whole), with the media they share."""
        from aurora_serve.media.image import sniff_kind
        from aurora_serve.media.seek import video_times

        data = await self.load(task)
        if sniff_kind(data) == "image":
            return [task], data
        times, duration = await asyncio.to_thread(video_times, data)
        spans = plan_windows(times, duration, seconds, task.options.get("start"), task.options.get("end"))
        return [window_task(task, s, e) for s, e in spans], data

    # --- one row ------------------------------------------------------------------------------------------
    async def row(self, task: Task, data: bytes | str | None = None) -> dict[str, Any]:
        """The output row of ``task`` (``data``: its media, when ``expand`` already loaded it)."""
        from aurora_serve.media.image import sniff_kind

        start = time.perf_counter()
        kind, item = None, None
        try:
            if task.error is not None:
                raise task.error
            data = await self.load(task) if data is None else data
            kind = sniff_kind(data)
            item = self.policy.item(kind, data, **task.options)
            prompt = task.prompt or DEFAULT_PROMPTS[kind]
            fields, error = await self.generate(task, item, prompt), None
        except (FatalError, asyncio.CancelledError):
            raise
        except AuroraError as e:
            fields, error = {}, {"type": e.code or e.type, "message": e.message}
        except Exception as e:  # a bug met on this row's media: the row says so, the run goes on
            logger.exception("unexpected error on row %s", task.id)
            fields, error = {}, {"type": type(e).__name__, "message": str(e)}
        return output_row(task, kind, item, fields, error, time.perf_counter() - start, self.model)


def output_row(task: Task, kind: str | None, item: MediaItem | None, fields: dict[str, Any],
               error: dict[str, str] | None, seconds: float, model: str) -> dict[str, Any]:
    """The row as written: the input's columns, then the id, the options as used, the result, the error."""
    options = dict(task.options)
    if item is not None:  # the options the engine used (defaults applied), not the ones asked for
        s = item.sampling
        options = {"token_kept_ratio": item.token_kept_ratio, "num_frames": s.num_frames, "fps": s.fps,
                   "max_frames": s.max_frames if s.fps is not None else None, "start": s.start, "end": s.end}
    prompt = task.prompt or (DEFAULT_PROMPTS[kind] if kind else None)
    return {**task.row, "id": task.id, "kind": kind, "prompt": prompt, **options,
            **{name: fields.get(name) for name in RESULT_FIELDS}, "model": model, "seconds": round(seconds, 4),
            "error": error}


def item_task(value: Any, defaults: Defaults) -> Task:
    """A ``Captioner`` item as a task: a path, a URL, bytes, or a dict with ``path``/``url``/``data`` and per-row
    options (``ROW_COLUMNS``); its id as in ``batch`` (``id`` if given, else the hash of source, prompt, options)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = {"data": bytes(value)}
    elif not isinstance(value, dict):
        value = {"path": os.fspath(value)}
    unknown = sorted(set(value) - {"path", "url", "data", *ROW_COLUMNS})
    if unknown:
        raise TypeError(f"unknown item key(s) {', '.join(map(str, unknown))}; known: path, url, data, "
                        f"{', '.join(ROW_COLUMNS)}")
    values = dict(value)
    data = values.pop("data", None)
    if data is not None:
        written = "sha256:" + hashlib.sha256(bytes(data)).hexdigest()
        return replace(make_task(values, written, written, defaults), data=bytes(data))
    source = values.get("path") or values.get("url")
    if not isinstance(source, str) or not source:
        raise TypeError(f"an item needs a path, a url or data; got {value!r:.80}")
    carried = [name for name in ("path", "url") if name in values]  # the row names its source, as in batch
    return make_task(values, source, resolve_source(source, Path.cwd()), defaults, carried)


def _read(path: str, max_bytes: int) -> bytes:
    from aurora_serve.errors import MediaTooLargeError

    size = os.path.getsize(path)
    if size > max_bytes:
        raise MediaTooLargeError(f"media is {size} bytes; the limit is {max_bytes}")
    with open(path, "rb") as f:
        return f.read()
