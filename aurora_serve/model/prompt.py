"""Prompt text → input ids with one visual span per frame (no SGLang; pure and unit-tested).

The chat template (``chat_template.jinja``) writes one marker per media item: ``<image>`` for an image,
``<video>`` for a video. Here a video marker becomes F frame placeholders joined by a space — exactly the
upstream ``" ".join(["<image>"] * F)`` — and the text is tokenized the upstream way: split on the frame
placeholder, first chunk with special tokens (BOS), the others without, one span per placeholder.
Each span holds ``tokens_per_frame(ρ)`` copies of the placeholder id (SGLang replaces them with the item's
pad values; only the count matters).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

from aurora_serve.errors import InvalidRequestError

CHAT_TEMPLATE = (Path(__file__).with_name("chat_template.jinja")).read_text()  # what checkpoints get
IMAGE_MARKER = "<image>"
VIDEO_MARKER = "<video>"
_MARKER_RE = re.compile(f"({re.escape(IMAGE_MARKER)}|{re.escape(VIDEO_MARKER)})")

Span = tuple[int, int]  # one media item as the prompt sees it: (frames decoded, tokens per frame)


def caption_prompt(tokenizer: Any, kind: str, text: str) -> str:
    """The chat-template prompt for one media item and one instruction (upstream ``inference.py``'s form)."""
    part = {"type": "video_url" if kind == "video" else "image_url"}
    messages = [{"role": "user", "content": [part, {"type": "text", "text": text}]}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def expand_prompt(
    text: str,
    images: Sequence[Span],
    videos: Sequence[Span],
    encode: Callable[[str, bool], list[int]],
    placeholder_id: int,
) -> tuple[list[int], list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
    """Tokenize ``text`` and expand its media markers.

    Args:
        text: prompt with one ``<image>`` per image and one ``<video>`` per video, in item order.
        images, videos: ``(frames, tokens_per_frame)`` of the items of each kind, in marker order.
        encode: ``encode(chunk, add_special_tokens) -> ids``.
        placeholder_id: id that fills the visual spans.

    Returns:
        ``(input_ids, image_offsets, video_offsets)``; offsets are per item, one inclusive
        ``(start, end)`` span per frame, in frame order.
    """
    parts = _MARKER_RE.split(text)
    markers = parts[1::2]
    counts = {IMAGE_MARKER: len(images), VIDEO_MARKER: len(videos)}
    for marker, expected in counts.items():
        found = markers.count(marker)
        if found != expected:
            kind = "image" if marker == IMAGE_MARKER else "video"
            raise InvalidRequestError(
                f"the prompt has {found} {marker} marker(s) but {expected} {kind}(s) were given; "
                f"put one {marker} where each {kind} goes (the chat template does this for chat requests)"
            )
    # Upstream string: each video marker → F frame placeholders separated by " ".
    chunks: list[str] = [parts[0]]
    frame_owner: list[tuple[str, int]] = []  # (kind, item index) per frame placeholder
    next_item = {IMAGE_MARKER: 0, VIDEO_MARKER: 0}
    for marker, tail in zip(markers, parts[2::2]):
        i = next_item[marker]
        next_item[marker] += 1
        frames = (images if marker == IMAGE_MARKER else videos)[i][0]
        kind = "image" if marker == IMAGE_MARKER else "video"
        for f in range(frames):
            frame_owner.append((kind, i))
            chunks.append(" " if f < frames - 1 else tail)
    ids: list[int] = []
    offsets = {"image": [[] for _ in images], "video": [[] for _ in videos]}
    for n, chunk in enumerate(chunks):
        ids.extend(encode(chunk, n == 0) if chunk or n == 0 else [])
        if n < len(frame_owner):
            kind, i = frame_owner[n]
            count = (images if kind == "image" else videos)[i][1]
            offsets[kind][i].append((len(ids), len(ids) + count - 1))
            ids.extend([placeholder_id] * count)
    return ids, offsets["image"], offsets["video"]
