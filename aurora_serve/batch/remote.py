"""``--server URL``: the same job against a running aurora-serve, through the ``openai`` client.

Each row is one chat completion with one media part. The media is read here (local files; URLs through the
same guarded fetcher as in-process runs) and sent as a ``data:`` URL, so the server needs neither access to the
files nor a host policy that lets it reach the URLs, and the kind (``image_url`` / ``video_url``) is decided
from the content as everywhere else. The sampling options travel as the server's extension fields in
``extra_body`` (``token_kept_ratio``, and ``num_frames`` or ``fps`` + ``max_frames``, ``start``, ``end``), always
the effective ones, so the server's own defaults never change what a row says it used.

Backoff: 429 and 503 (the server's admission limit and its loading/draining states) and connection failures are
retried after the server's ``Retry-After`` or an exponential delay with jitter, up to ``max_retries`` times;
then the run stops (``FatalError``) and a rerun resumes it. Any other HTTP error is the row's error.

Frames per row: ``usage.frames`` when the server reports it, else ``usage.visual_tokens`` divided by
``tokens_per_frame(ρ)`` at the default vision geometry (exact: one item per request).
"""

from __future__ import annotations

import asyncio
import base64
import random
from typing import Any, Awaitable, Callable

from aurora_serve.batch.backend import Backend, FatalError
from aurora_serve.batch.tasks import Task
from aurora_serve.errors import AuroraError
from aurora_serve.media.fetch import FetchLimits
from aurora_serve.media.item import MediaItem, MediaPolicy

RETRIED = (429, 503)
BACKOFF_S, BACKOFF_CAP_S = 0.5, 30.0


def api_base(url: str) -> str:
    """The openai client's base URL: the server's root with ``/v1`` (added when missing)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def extension_fields(item: MediaItem) -> dict[str, Any]:
    """The request's sampling extensions, as the HTTP API names them (only those that apply)."""
    fields: dict[str, Any] = {"token_kept_ratio": item.token_kept_ratio}
    if item.kind == "video":
        s = item.sampling
        names = ("num_frames",) if s.num_frames is not None else ("fps", "max_frames")
        fields.update({n: getattr(s, n) for n in (*names, "start", "end") if getattr(s, n) is not None})
    return fields


class ServerBackend(Backend):
    fetch_local_bytes = True

    def __init__(self, url: str, api_key: str | None, policy: MediaPolicy, limits: FetchLimits,
                 sampling: dict[str, Any], *, max_retries: int = 8, timeout: float = 600.0, http_client=None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        super().__init__(policy, limits, sampling)
        from openai import AsyncOpenAI

        self.url, self.max_retries, self.sleep = url, max_retries, sleep
        self.client = AsyncOpenAI(base_url=api_base(url), api_key=api_key or "none", max_retries=0, timeout=timeout,
                                  http_client=http_client)
        self.model = "auroracap"
        self.retries = 0  # backoffs taken, for the summary and tests

    async def start(self) -> None:
        """Check the server answers (and the key works) before the first row; learn the served model's name."""
        models = await self._call(self.client.models.list)
        if models.data:
            self.model = models.data[0].id

    async def close(self) -> None:
        await self.client.close()

    async def generate(self, task: Task, item: MediaItem, prompt: str) -> dict[str, Any]:
        from aurora_serve.model.token_count import tokens_per_frame

        part = f"{item.kind}_url"
        url = "data:application/octet-stream;base64," + base64.b64encode(item.data).decode()
        messages = [{"role": "user", "content": [{"type": part, part: {"url": url}}, {"type": "text", "text": prompt}]}]
        response = await self._call(lambda: self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=self.sampling["max_new_tokens"],
            temperature=self.sampling["temperature"], top_p=self.sampling["top_p"],
            extra_body={**extension_fields(item), **({"ignore_eos": True} if self.sampling.get("ignore_eos") else {})}))
        choice, usage = response.choices[0], response.usage
        extra = (usage.model_extra or {}) if usage is not None else {}
        visual = int(extra.get("visual_tokens") or 0)
        frames = extra.get("frames")
        frames = frames[0] if isinstance(frames, list) and frames else frames
        if not isinstance(frames, int):
            frames = visual // tokens_per_frame(item.token_kept_ratio)
        return {"caption": (choice.message.content or "").strip(), "finish_reason": choice.finish_reason,
                "frames": frames, "visual_tokens": visual, "prompt_tokens": usage.prompt_tokens if usage else None,
                "completion_tokens": usage.completion_tokens if usage else None}

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()`` with backoff on 429/503/connection failures; other HTTP errors become the row's error."""
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                return await call()
            except openai.APIStatusError as e:
                if e.status_code not in RETRIED:
                    raise _row_error(e) from None
                failure, wait = f"HTTP {e.status_code}", _retry_after(e)
            except (openai.APIConnectionError, openai.APITimeoutError) as e:
                failure, wait = f"{type(e).__name__}: {e}", None
            if attempt == self.max_retries:
                raise FatalError(f"{self.url} still failing after {self.max_retries} retries ({failure})")
            self.retries += 1
            await self.sleep(wait if wait is not None else min(BACKOFF_CAP_S, BACKOFF_S * 2 ** attempt)
                             * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")


def _retry_after(error) -> float | None:
    value = error.response.headers.get("retry-after") if error.response is not None else None
    try:
        return min(BACKOFF_CAP_S, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date, which aurora-serve never sends: the exponential delay instead


def _row_error(error) -> AuroraError:
    """The server's OpenAI error envelope as the row's error (its code, else ``http_<status>``)."""
    body = error.body if isinstance(error.body, dict) else {}
    body = body.get("error", body) if isinstance(body.get("error"), dict) else body
    message = body.get("message") or error.message
    return AuroraError(str(message), code=body.get("code") or f"http_{error.status_code}")
