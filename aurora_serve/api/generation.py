"""Run one job on the engine and answer: a JSON body, or an SSE stream whose first chunk is already in hand.

Every job runs as an engine stream (the non-streaming answer is its last chunk), so TTFT, abort and
disconnect handling are the same for both. Anything that fails before the first chunk — media fetch and
decode, prompt too long, engine validation — raises here, before the 200, and becomes an error envelope.
A request that is abandoned (client gone, error, shutdown) is aborted in the engine, freeing its KV.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, TypeVar

from starlette.requests import Request

from aurora_serve.api.gate import bearer_token
from aurora_serve.api.metrics import Metrics
from aurora_serve.api.protocol import (
    Caption, ChatCompletionResponse, Choice, ResponseMessage, finish_reason_of, usage_of,
)
from aurora_serve.api.runtime import Ticket
from aurora_serve.api.service import Job
from aurora_serve.api.sse import EventStream, chat_events
from aurora_serve.errors import AuroraError, InvalidRequestError, ServiceUnavailableError
from aurora_serve.model.token_count import tokens_per_frame

T = TypeVar("T")


class EngineRun:
    """The engine side of one job: its chunks, its metrics, and an abort for when it is abandoned."""

    def __init__(self, engine, job: Job, ticket: Ticket, metrics: Metrics):
        self.engine, self.job, self.ticket, self.metrics = engine, job, ticket, metrics
        self.done = False

    async def chunks(self) -> AsyncIterator[dict]:
        async for chunk in self.engine.stream(self.job.request):
            self.ticket.first_token()
            meta = chunk["meta_info"]
            reason = meta.get("finish_reason")
            if isinstance(reason, dict) and reason.get("type") == "abort":
                self.done = True  # the engine ended it itself
                raise _abort_error(reason)
            if reason is not None:
                self.done = True
                self._record(meta)
            yield chunk

    def cancel(self) -> None:
        """Abort the engine request unless it finished (idempotent, synchronous: safe while cancelled)."""
        if not self.done:
            self.done = True
            self.engine.abort(self.job.request.rid)

    def _record(self, meta: dict) -> None:
        usage = usage_of(meta)
        self.ticket.finished(usage.completion_tokens)
        self.metrics.visual_tokens.observe(usage.visual_tokens)
        self.metrics.cached_tokens.inc(usage.prompt_tokens_details.cached_tokens)
        self.metrics.observe_engine_timings(meta)


def _abort_error(reason: dict) -> AuroraError:
    message = str(reason.get("message") or "the engine aborted the request")
    status = reason.get("status_code")
    if status == 400:
        return InvalidRequestError(message)
    if status == 503:
        return ServiceUnavailableError(message)
    return AuroraError(message, code="engine_abort")


async def until_disconnected(request: Request) -> None:
    """Return when the client goes away (the body has been read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled and ClientGone raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        raise ClientGone()
    return task.result()


class ClientGone(Exception):
    """The client disconnected before the answer was ready (nobody is left to answer)."""


async def run_job(request: Request, runtime, job: Job, ticket: Ticket, caption: bool = False) -> Any:
    """The answer to ``job``: a response model (non-streaming) or an EventStream of SSE events."""
    run = EngineRun(runtime.engine, job, ticket, runtime.metrics)
    chunks = run.chunks()

    def close() -> None:  # idempotent; for streams chat_events' own finally usually did it already
        run.cancel()
        ticket.release()

    try:
        if not job.stream:
            last = await unless_disconnected(request, _last(chunks))
        else:
            first = await unless_disconnected(request, anext(chunks))
    except BaseException:
        close()
        raise
    if not job.stream:
        close()
        return caption_response(job, last) if caption else chat_response(job, last)
    return EventStream(chat_events(job, first, chunks, run, ticket), on_close=close)


async def _last(chunks: AsyncIterator[dict]) -> dict:
    last = None
    async for chunk in chunks:
        last = chunk
    if last is None:
        raise AuroraError("the engine returned no output")
    return last


def chat_response(job: Job, out: dict) -> ChatCompletionResponse:
    meta = out["meta_info"]
    message = ResponseMessage(content=out.get("text") or "")
    return ChatCompletionResponse(id=job.id, created=job.created, model=job.model, usage=usage_of(meta),
                                  choices=[Choice(finish_reason=finish_reason_of(meta), message=message)])


def caption_response(job: Job, out: dict) -> Caption:
    meta, media, usage = out["meta_info"], job.media[0], usage_of(out["meta_info"])
    per_frame = tokens_per_frame(media["token_kept_ratio"])
    # frames used = min(frames in the video, frames asked for): read back from the engine's visual-token count
    frames = usage.visual_tokens // per_frame if usage.visual_tokens % per_frame == 0 else media["num_frames"]
    return Caption(id=job.id, created=job.created, model=job.model, caption=out.get("text") or "",
                   finish_reason=finish_reason_of(meta), kind=media["kind"],
                   token_kept_ratio=media["token_kept_ratio"], num_frames=frames, usage=usage)


async def answer_chat(request: Request, runtime, body) -> Any:
    """``POST /v1/chat/completions``: admit, build the job, run it."""
    ticket = runtime.admit("chat")
    try:
        job = await unless_disconnected(request, runtime.service.chat_job(body, bearer_token(request.scope)))
    except BaseException:
        ticket.release()
        raise
    return await run_job(request, runtime, job, ticket)


async def answer_caption(request: Request, runtime, body, upload: bytes | None) -> Any:
    """``POST /v1/captions``: the same path with a one-item prompt."""
    ticket = runtime.admit("captions")
    try:
        job = await unless_disconnected(request, runtime.service.caption_job(body, upload))
    except BaseException:
        ticket.release()
        raise
    return await run_job(request, runtime, job, ticket, caption=True)
