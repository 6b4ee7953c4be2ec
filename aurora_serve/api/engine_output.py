"""What the engine's output means on the wire, for every endpoint: its usage (with the frames each item got),
its finish reason, and a stream of it as text deltas (what chat chunks and Responses events are made of).

SGLang 0.5.23 streams cumulative ``text`` (its ``incremental_streaming_output`` is off by default), so a
chunk's delta is the new suffix; a chunk that does not extend what was sent is taken as a delta itself.
"""

from __future__ import annotations

from typing import AsyncIterator

from aurora_serve.api.protocol import PromptTokensDetails, Usage


async def text_deltas(first: dict, rest: AsyncIterator[dict]) -> AsyncIterator[tuple[str, dict, str | None]]:
    """``(delta, meta_info, finish reason or None)`` for each engine chunk that adds text or ends the answer,
    from ``first`` on; over after the chunk with a finish reason (or when the engine stream ends)."""
    sent, out = "", first
    while out is not None:
        text = out.get("text") or ""
        delta = text[len(sent):] if text.startswith(sent) else text
        sent = text if text.startswith(sent) else sent + text
        meta = out["meta_info"]
        reason = finish_reason_of(meta) if meta.get("finish_reason") is not None else None
        if delta or reason:
            yield delta, meta, reason
        out = None if reason is not None else await anext(rest, None)


def usage_of(meta: dict, frames: list[int] | None = None, completion: int | None = None) -> Usage:
    """Usage from SGLang's ``meta_info``; ``completion`` overrides its count (0 on a stream's first chunk)."""
    prompt = int(meta.get("prompt_tokens") or 0)
    completion = int(meta.get("completion_tokens") or 0) if completion is None else completion
    image, video = int(meta.get("image_tokens") or 0), int(meta.get("video_tokens") or 0)
    details = PromptTokensDetails(cached_tokens=int(meta.get("cached_tokens") or 0), image_tokens=image,
                                  video_tokens=video)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 prompt_tokens_details=details, visual_tokens=image + video, frames=list(frames or []))


def frames_in_order(kinds: list[str], report: dict[str, list[int]]) -> list[int]:
    """The engine's report (frames per item, by kind, each in request order) in the request's own order."""
    queues = {kind: list(report.get(kind) or []) for kind in ("image", "video")}
    return [queues[kind].pop(0) if queues.get(kind) else 0 for kind in kinds]


def finish_reason_of(meta: dict) -> str:
    reason = meta.get("finish_reason")
    kind = reason.get("type") if isinstance(reason, dict) else reason
    return "length" if kind == "length" else "stop"
