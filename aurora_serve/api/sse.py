"""Server-sent events for chat completion streams (OpenAI's wire format).

Each event is ``data: <chat.completion.chunk JSON>\\n\\n``: first the assistant role, then content deltas,
the last content chunk carrying ``finish_reason``; with ``stream_options.include_usage`` every chunk has
``"usage": null`` and one more chunk with ``choices: []`` and the totals comes last. The stream ends with
``data: [DONE]``. A failure after the 200 is one ``data: {"error": {...}}`` event, then ``[DONE]``.

SGLang 0.5.23 streams cumulative ``text`` (its ``incremental_streaming_output`` is off by default), so the
delta is the new suffix; a chunk that does not extend what was sent is taken as a delta itself.
"""

from __future__ import annotations

import json
import logging
from typing import AsyncIterator, Callable

from starlette.responses import StreamingResponse

from aurora_serve.api.protocol import ChatCompletionChunk, ChunkChoice, Delta, finish_reason_of, usage_of
from aurora_serve.errors import AuroraError

logger = logging.getLogger(__name__)
DONE = "data: [DONE]\n\n"


class EventStream(StreamingResponse):
    """An SSE response that runs ``on_close`` however it ends — even when the client is gone before the
    first byte, in which case Starlette never starts the generator and its ``finally`` never runs."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None]):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def error_event(error: AuroraError) -> str:
    return event(error.to_dict())


def _chunk(job, choices: list[ChunkChoice], usage=None) -> dict:
    data = ChatCompletionChunk(id=job.id, created=job.created, model=job.model, choices=choices,
                               usage=usage).model_dump()
    if not job.include_usage:
        data.pop("usage")
    return data


async def chat_events(job, first: dict, chunks: AsyncIterator[dict], run, ticket) -> AsyncIterator[str]:
    """SSE text for one job whose first engine chunk is ``first`` and the rest come from ``chunks``."""
    try:
        yield event(_chunk(job, [ChunkChoice(delta=Delta(role="assistant", content=""))]))
        sent, out = "", first
        while True:
            text = out.get("text") or ""
            delta = text[len(sent):] if text.startswith(sent) else text
            sent = text if text.startswith(sent) else sent + text
            meta = out["meta_info"]
            reason = finish_reason_of(meta) if meta.get("finish_reason") is not None else None
            if delta or reason:
                yield event(_chunk(job, [ChunkChoice(delta=Delta(content=delta), finish_reason=reason)]))
            if reason is not None:
                break
            out = await anext(chunks, None)
            if out is None:
                break
        if job.include_usage:
            yield event(_chunk(job, [], usage=usage_of(meta)))
    except AuroraError as e:
        yield error_event(e)
    except Exception:  # a bug, not the client's doing: still one error event, then [DONE]
        logger.exception("stream %s failed", job.id)
        yield error_event(AuroraError("internal error while streaming"))
    finally:  # also on disconnect (CancelledError): abort the engine request, free the slot
        run.cancel()
        ticket.release()
    yield DONE
