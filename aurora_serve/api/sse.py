"""Server-sent events, OpenAI's wire format: formatting only (what the events say is decided by the caller).

Each event is ``data: <JSON>\\n\\n``; a stream ends with ``data: [DONE]``. ``EventStream`` is the response
that carries them and runs its ``on_close`` however it ends.
"""

from __future__ import annotations

import json
from typing import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse

DONE = "data: [DONE]\n\n"


def encode(payload: dict, event: str | None = None) -> str:
    """One event; ``event`` names it on an ``event:`` line (the Responses API's streams do, chat's do not)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


class EventStream(StreamingResponse):
    """An SSE response that awaits ``on_close`` however it ends — even when the client is gone before the
    first byte, in which case Starlette never starts the event iterator and its cleanup would never run."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], Awaitable[None]]):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()
