"""``POST /v1/responses``, the answer side: the ``response`` object and its stream of events, as OpenAI's
published schemas have them (``Response``, ``ResponseStreamEvent``).

A stream is ``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, one ``response.output_text.delta`` per piece of text, ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``, then ``response.completed`` with the usage — or,
as OpenAI does when ``max_output_tokens`` cuts the text, ``response.incomplete`` (status ``incomplete``,
``incomplete_details.reason: max_output_tokens``). Every event carries ``sequence_number`` (0, 1, …) and an
``event:`` line naming its type. A failure after the 200 is an ``error`` event, then ``response.failed``.
Usage: ``input_tokens`` (with ``input_tokens_details``: cached, image and video tokens), ``output_tokens``,
``total_tokens``, and our ``visual_tokens`` and ``frames``, as on chat.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from typing import AsyncIterator, Callable

from aurora_serve.api import sse
from aurora_serve.api.engine_request import Job
from aurora_serve.api.protocol import Usage
from aurora_serve.api.responses import CreateResponse
from aurora_serve.api.engine_output import text_deltas
from aurora_serve.errors import AuroraError

logger = logging.getLogger(__name__)


class ResponseWriter:
    """The ``response`` objects of one request (its id, its echoed settings) at each stage."""

    def __init__(self, body: CreateResponse, job: Job, model: str):
        self.body, self.job, self.model = body, job, model
        self.item_id = "msg_" + uuid.uuid4().hex

    def message(self, text: str | None, status: str) -> dict:
        content = [] if text is None else [output_text(text)]
        return {"id": self.item_id, "type": "message", "role": "assistant", "status": status, "content": content}

    def response(self, status: str, output: list[dict], usage: Usage | None = None, error: dict | None = None) -> dict:
        body = self.body
        out = {
            "id": self.job.id, "object": "response", "created_at": self.job.created, "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.instructions, "max_output_tokens": body.max_output_tokens, "model": self.model,
            "output": output, "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": None, "reasoning": None, "store": False,
            "temperature": self.job.request.sampling_params["temperature"],
            "top_p": self.job.request.sampling_params["top_p"],
            "text": {"format": {"type": "text"}}, "tool_choice": body.tool_choice or "auto", "tools": [],
            "truncation": "disabled", "metadata": body.metadata or {},
        }
        if usage is not None:  # the published schema has no null usage: absent until there is one
            out["usage"] = response_usage(usage)
        if body.user is not None:
            out["user"] = body.user
        return out

    def final(self, text: str, reason: str, usage: Usage) -> dict:
        """The finished response: ``completed``, or ``incomplete`` when the token limit cut it."""
        status = "incomplete" if reason == "length" else "completed"
        return self.response(status, [self.message(text, status)], usage)


def output_text(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_usage(usage: Usage) -> dict:
    details = usage.prompt_tokens_details
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": details.cached_tokens, "cache_write_tokens": 0,
                                     "image_tokens": details.image_tokens, "video_tokens": details.video_tokens},
            "output_tokens": usage.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens, "visual_tokens": usage.visual_tokens, "frames": usage.frames}


async def response_events(writer: ResponseWriter, first: dict, chunks: AsyncIterator[dict],
                          usage: Callable[[dict], Usage]) -> AsyncIterator[str]:
    """The Responses event stream of a job whose first engine chunk is ``first``; ``usage`` reads a chunk's."""
    numbers = itertools.count()

    def event(kind: str, **fields) -> str:
        return sse.encode({"type": kind, **fields, "sequence_number": next(numbers)}, event=kind)

    at = {"item_id": writer.item_id, "output_index": 0, "content_index": 0}
    text, meta, reason = "", first["meta_info"], None
    try:
        yield event("response.created", response=writer.response("in_progress", []))
        yield event("response.in_progress", response=writer.response("in_progress", []))
        yield event("response.output_item.added", output_index=0, item=writer.message(None, "in_progress"))
        yield event("response.content_part.added", **at, part=output_text(""))
        async for delta, meta, reason in text_deltas(first, chunks):
            if delta:
                text += delta
                yield event("response.output_text.delta", **at, delta=delta, logprobs=[])
        final = writer.final(text, reason or "stop", usage(meta))
        yield event("response.output_text.done", **at, text=text, logprobs=[])
        yield event("response.content_part.done", **at, part=output_text(text))
        yield event("response.output_item.done", output_index=0, item=final["output"][0])
        yield event(f"response.{final['status']}", response=final)
    except Exception as e:  # after the 200: an error event and the failed response, never a broken stream
        if not isinstance(e, AuroraError):
            logger.exception("response stream %s failed", writer.job.id)
            e = AuroraError("internal error while streaming")
        yield event("error", code=e.code, message=e.message, param=e.param)
        failed = writer.response("failed", [writer.message(text, "incomplete")],
                                 error={"code": "server_error", "message": e.message})
        yield event("response.failed", response=failed)
