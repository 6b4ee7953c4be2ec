"""Serving one admitted generation request: build its engine job, run it, answer (JSON or a stream).

Every job runs as an engine stream (the non-streaming answer is its last chunk), so TTFT, abort and
disconnect handling are the same for both. Anything that fails before the first chunk (media fetch and
decode, prompt too long, engine validation) raises before the 200 and becomes an error envelope; after the
200 it is one error event in the stream. A request's life here, from its parsed body to its last chunk, is
one generator (``_lifetime``) whose single ``try/finally`` aborts its engine request when it is abandoned
(client gone, error, shutdown), freeing its KV.

Admission (a concurrency slot, taken before the body was read) and its release belong to the gate
(:mod:`aurora_serve.api.gate`, :mod:`aurora_serve.api.admission`), around this whole call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from starlette.requests import Request

from aurora_serve.api import sse
from aurora_serve.api.engine_request import Job, JobBuilder
from aurora_serve.api.gate import bearer_token
from aurora_serve.api.lifecycle import Lifecycle
from aurora_serve.api.metrics import Metrics
from aurora_serve.api.protocol import (
    Caption, CaptionRequest, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Choice, ChunkChoice,
    Delta, ResponseMessage, Usage,
)
from aurora_serve.api.engine_output import finish_reason_of, frames_in_order, text_deltas, usage_of
from aurora_serve.api.response_events import ResponseWriter, response_events
from aurora_serve.api.responses import CreateResponse, to_chat
from aurora_serve.config import ServerSettings
from aurora_serve.errors import AuroraError, InvalidRequestError, ServiceUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready (nobody is left to answer)."""


class Serving:
    def __init__(self, settings: ServerSettings, lifecycle: Lifecycle, metrics: Metrics):
        self.settings, self.lifecycle, self.metrics = settings, lifecycle, metrics
        self._builder: JobBuilder | None = None

    @property
    def builder(self) -> JobBuilder:
        if self._builder is None:  # the engine's tokenizer exists once the engine has loaded
            engine = self.lifecycle.engine
            self._builder = JobBuilder(self.settings, engine.tokenizer, engine.context_length, self.metrics)
        return self._builder

    async def chat(self, request: Request, body: ChatCompletionRequest) -> Any:
        """``POST /v1/chat/completions``."""
        build = lambda: self.builder.chat(body, bearer_token(request.scope))  # noqa: E731
        return await self._serve(request, "chat", build, self._chat_response)

    async def caption(self, request: Request, body: CaptionRequest, upload: bytes | None) -> Any:
        """``POST /v1/captions``: the same path with a one-item prompt."""
        return await self._serve(request, "captions", lambda: self.builder.caption(body, upload), self._caption_response)

    async def responses(self, request: Request, body: CreateResponse) -> Any:
        """``POST /v1/responses``: the chat request it means, answered as a ``response`` (events when streamed)."""
        writer: ResponseWriter | None = None  # one per request, made with its job

        async def build() -> Job:
            nonlocal writer
            chat, paths = to_chat(body)
            job = await self.builder.chat(chat, bearer_token(request.scope), paths)
            job.id = "resp_" + job.id.split("-", 1)[1]
            writer = ResponseWriter(body, job, self.settings.served_model_name)
            return job

        def respond(job: Job, out: dict) -> dict:
            meta = out["meta_info"]
            return writer.final(out.get("text") or "", finish_reason_of(meta), self._usage(job, meta))

        def events(job: Job, first: dict, chunks: AsyncIterator[dict]) -> AsyncIterator[str]:
            return response_events(writer, first, chunks, lambda meta: self._usage(job, meta))

        return await self._serve(request, "responses", build, respond, events)

    # --- one request ---------------------------------------------------------------------------------
    async def _serve(self, request: Request, endpoint: str, build: Callable[[], Awaitable[Job]],
                     respond: Callable[[Job, dict], Any],
                     events: Callable[..., AsyncIterator[str]] | None = None) -> Any:
        """``events(job, first, chunks)``: the stream's events (default: ``chat.completion.chunk``s)."""
        life = self._lifetime(endpoint, build)
        try:
            job = await _unless_disconnected(request, anext(life))
            first = await _unless_disconnected(request, _first(life))
            if job.stream:
                return sse.EventStream((events or self._events)(job, first, life), on_close=life.aclose)
            return respond(job, await _unless_disconnected(request, _last(life, first)))
        except BaseException:
            await life.aclose()  # usually over already; this makes sure it never stays suspended
            raise

    async def _lifetime(self, endpoint: str, build: Callable[[], Awaitable[Job]]) -> AsyncIterator[Any]:
        """The request's life: its ``Job``, then its engine chunks. The one cleanup, however it ends: abort an
        unfinished engine request."""
        timer = _Timer(self.metrics, endpoint)
        job, done = None, False
        try:
            job = await build()
            yield job
            async for chunk in self.lifecycle.engine.stream(job.request):
                timer.first_token()
                meta = chunk["meta_info"]
                reason = meta.get("finish_reason")
                if isinstance(reason, dict) and reason.get("type") == "abort":
                    done = True  # the engine ended it itself
                    raise _abort_error(reason)
                if reason is not None:
                    done = True
                    self._record(timer, job, meta)
                yield chunk
            done = True
        finally:
            if job is not None and not done:
                self.lifecycle.engine.abort(job.request.rid)
            timer.release()

    def _record(self, timer: "_Timer", job: Job, meta: dict) -> None:
        usage = self._usage(job, meta)  # also takes the engine's frame report, whoever else reads it
        timer.finished(usage.completion_tokens)
        self.metrics.visual_tokens.observe(usage.visual_tokens)
        self.metrics.cached_tokens.inc(usage.prompt_tokens_details.cached_tokens)

    # --- answers -------------------------------------------------------------------------------------
    def _usage(self, job: Job, meta: dict, completion: int | None = None) -> Usage:
        """The usage of ``meta`` with the frames each item got (asked of the engine once, when it knows)."""
        if job.frames is None:
            report = self.lifecycle.engine.frames_sampled(job.request.rid) if job.media else {}
            if report is not None:
                job.frames = frames_in_order([m.kind for m in job.media], report)
        return usage_of(meta, job.frames, completion)

    def _chat_response(self, job: Job, out: dict) -> ChatCompletionResponse:
        meta = out["meta_info"]
        message = ResponseMessage(content=out.get("text") or "")
        return ChatCompletionResponse(id=job.id, created=job.created, model=self.settings.served_model_name,
                                      usage=self._usage(job, meta),
                                      choices=[Choice(finish_reason=finish_reason_of(meta), message=message)])

    def _caption_response(self, job: Job, out: dict) -> Caption:
        meta, item = out["meta_info"], job.media[0]
        usage = self._usage(job, meta)
        # the frames the engine reports; without a report, its visual tokens over the model's own tokens per
        # frame (one item, so that count is exact too)
        frames = usage.frames[0] if usage.frames else \
            usage.visual_tokens // self.lifecycle.engine.spec.vision.tokens_per_frame(item.token_kept_ratio)
        return Caption(id=job.id, created=job.created, model=self.settings.served_model_name,
                       caption=out.get("text") or "", finish_reason=finish_reason_of(meta), kind=item.kind,
                       token_kept_ratio=item.token_kept_ratio, num_frames=frames, usage=usage)

    async def _events(self, job: Job, first: dict, chunks: AsyncIterator[dict]) -> AsyncIterator[str]:
        """``chat.completion.chunk`` events for a job whose first engine chunk is ``first``: the usage so far on
        every chunk with ``continuous_usage_stats`` (as vLLM), a last usage-only chunk with ``include_usage``."""
        def chunk(choices: list[ChunkChoice], meta: dict | None = None, completion: int | None = None) -> str:
            usage = self._usage(job, meta, completion) if meta is not None else None
            data = ChatCompletionChunk(id=job.id, created=job.created, model=self.settings.served_model_name,
                                       choices=choices, usage=usage).model_dump()
            if not (job.include_usage or job.continuous_usage):
                data.pop("usage")
            return sse.encode(data)

        every = first["meta_info"] if job.continuous_usage else None
        try:
            meta = first["meta_info"]
            yield chunk([ChunkChoice(delta=Delta(role="assistant", content=""))], every, completion=0)
            async for delta, meta, reason in text_deltas(first, chunks):
                yield chunk([ChunkChoice(delta=Delta(content=delta), finish_reason=reason)],
                            meta if job.continuous_usage else None)
            if job.include_usage:
                yield chunk([], meta)
        except AuroraError as e:
            yield sse.encode(e.to_dict())
        except Exception:  # a bug, not the client's doing: still one error event, then [DONE]
            logger.exception("stream %s failed", job.id)
            yield sse.encode(AuroraError("internal error while streaming").to_dict())
        yield sse.DONE


class _Timer:
    """One request's latencies (TTFT, E2E, TPOT), from its parsed body, and its place in the queued gauge until
    its first token (the gauge also counts requests waiting for a slot: ``admission``)."""

    def __init__(self, metrics: Metrics, endpoint: str):
        self.metrics, self.endpoint = metrics, endpoint
        self.start = time.perf_counter()
        self.first: float | None = None
        metrics.queued.inc()

    def first_token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.metrics.ttft.labels(self.endpoint).observe(self.first - self.start)
            self.metrics.queued.dec()

    def finished(self, completion_tokens: int) -> None:
        end = time.perf_counter()
        self.metrics.e2e.labels(self.endpoint).observe(end - self.start)
        self.metrics.output_tokens.observe(completion_tokens)
        if self.first is not None and completion_tokens > 1:
            self.metrics.tpot.labels(self.endpoint).observe((end - self.first) / (completion_tokens - 1))

    def release(self) -> None:
        if self.first is None:
            self.metrics.queued.dec()


def _abort_error(reason: dict) -> AuroraError:
    message = str(reason.get("message") or "the engine aborted the request")
    status = reason.get("status_code")
    if status == 400:
        return InvalidRequestError(message)
    if status == 503:
        return ServiceUnavailableError(message)
    return AuroraError(message, code="engine_abort")


async def _first(chunks: AsyncIterator[dict]) -> dict:
    first = await anext(chunks, None)
    if first is None:
        raise AuroraError("the engine returned no output")
    return first


async def _last(chunks: AsyncIterator[dict], first: dict) -> dict:
    last = first
    async for chunk in chunks:
        last = chunk
    return last


async def _until_disconnected(request: Request) -> None:
    """Return when the client goes away (the body has been read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled and ClientGone raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        # Wait for it to unwind (its engine request aborted, its slot released) before reporting.
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone()
    return task.result()
