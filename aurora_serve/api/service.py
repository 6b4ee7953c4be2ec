"""Chat / caption requests → one engine job: checks, chat template, media fetch, sampling parameters.

Greedy by default (temperature 0): AuroraCap's reference decoding. ``temperature``, ``top_p``,
``max_completion_tokens``/``max_tokens``, ``stop``, ``seed``, the penalties and our extensions are honoured;
OpenAI features AuroraCap cannot serve (n > 1, logprobs, tools, audio, structured output, …) are refused
with a 400 that names them. Media is fetched here (``fetch_media``: byte, time, scheme and address limits)
and handed to the engine as bytes, so the engine never touches a URL or the file system for a request.
A part's ``uuid`` becomes the item's ``media_id``, with the caller's ``media_scope`` (a digest of its API key),
so one key's ids can never name another key's media; a part with a uuid and no url is not fetched at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from aurora_serve.api.metrics import Metrics
from aurora_serve.api.protocol import CaptionRequest, ChatCompletionRequest, ImageURL, TextPart, VideoURL
from aurora_serve.config import ServerSettings
from aurora_serve.engine import GenerateRequest
from aurora_serve.errors import InvalidRequestError, MediaTooLargeError, NotFoundError
from aurora_serve.media.fetch import FetchLimits, fetch_media

MARKERS = ("<image>", "<video>")
DEFAULT_CAPTION_PROMPT = "Describe the video in detail."
_Check = Callable[[Any], bool]
# (field, refused when, why) — OpenAI features this server does not implement.
UNSUPPORTED: list[tuple[str, _Check, str]] = [
    ("n", lambda v: v not in (None, 1), "n > 1 is not supported; send separate requests"),
    ("logprobs", lambda v: bool(v), "logprobs are not supported"),
    ("top_logprobs", lambda v: v not in (None, 0), "top_logprobs is not supported"),
    ("tools", lambda v: bool(v), "tools (function calling) are not supported by AuroraCap"),
    ("tool_choice", lambda v: v not in (None, "none"), "tool_choice is not supported by AuroraCap"),
    ("functions", lambda v: bool(v), "functions are not supported by AuroraCap"),
    ("function_call", lambda v: v not in (None, "none"), "function_call is not supported by AuroraCap"),
    ("audio", lambda v: v is not None, "audio output is not supported"),
    ("modalities", lambda v: v not in (None, ["text"]), "only the text output modality is supported"),
    ("prediction", lambda v: v is not None, "predicted outputs are not supported"),
    ("response_format", lambda v: v not in (None, {"type": "text"}),
     "response_format other than text is not supported"),
    ("logit_bias", lambda v: bool(v), "logit_bias is not supported"),
    ("web_search_options", lambda v: v is not None, "web search is not supported"),
    ("reasoning_effort", lambda v: v is not None,
     "reasoning_effort is not supported: AuroraCap is not a reasoning model"),
]


@dataclass
class MediaInput:
    """One media item of a request, before fetching. ``kind`` None: decided from the bytes (captions)."""

    kind: str | None
    url: str | None = None
    data: bytes | None = None
    token_kept_ratio: float | None = None
    num_frames: int | None = None
    uuid: str | None = None  # the caller's id for this media (url None: cached media only)


@dataclass
class Job:
    """One generation, ready for the engine, plus what the response needs."""

    request: GenerateRequest
    model: str
    stream: bool
    include_usage: bool
    media: list[dict] = field(default_factory=list)  # {"kind", "token_kept_ratio", "num_frames"}
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))


class ChatService:
    def __init__(self, settings: ServerSettings, engine, metrics: Metrics):
        self.settings, self.engine, self.metrics = settings, engine, metrics
        self.limits = FetchLimits(
            max_bytes=settings.max_media_bytes, max_data_url_bytes=settings.max_data_url_bytes,
            connect_timeout=settings.media_connect_timeout, total_timeout=settings.media_timeout,
            max_redirects=settings.media_max_redirects, allow_hosts=tuple(settings.allow_media_hosts),
            allowed_local_media_path=settings.allowed_local_media_path,
        )

    # --- chat ------------------------------------------------------------------------------------------
    async def chat_job(self, req: ChatCompletionRequest, api_key: bytes | None = None) -> Job:
        """``api_key``: the caller's bearer token (already checked by the gate); scopes media uuids."""
        self._check_request(req)
        messages, media = self._template_messages(req)
        prompt = self.engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        sampling = self._sampling(req.temperature, req.top_p, req.max_completion_tokens or req.max_tokens)
        if req.stop is not None:
            sampling["stop"] = req.stop
        if req.seed is not None:
            sampling["sampling_seed"] = req.seed
        for name in ("frequency_penalty", "presence_penalty", "ignore_eos"):
            if getattr(req, name) is not None:
                sampling[name] = getattr(req, name)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return await self._job(prompt, media, sampling, bool(req.stream), include_usage, scope=_scope(api_key))

    def _check_request(self, req: ChatCompletionRequest) -> None:
        if req.model != self.settings.served_model_name:
            raise NotFoundError(f"The model `{req.model}` does not exist; this server serves "
                                f"`{self.settings.served_model_name}`", param="model", code="model_not_found")
        for name, refused, why in UNSUPPORTED:
            if refused(getattr(req, name)):
                raise InvalidRequestError(why, param=name, code="unsupported_parameter")
        if req.stream_options is not None and not req.stream:
            raise InvalidRequestError("stream_options is only allowed when stream is true", param="stream_options")
        if isinstance(req.stop, list) and len(req.stop) > 4:
            raise InvalidRequestError("stop takes at most 4 sequences", param="stop")

    def _template_messages(self, req: ChatCompletionRequest) -> tuple[list[dict], list[MediaInput]]:
        """Messages as the chat template reads them (media parts become bare markers) + the media, in order."""
        messages, media = [], []
        for i, msg in enumerate(req.messages):
            role = "system" if msg.role == "developer" else msg.role
            if msg.content is None or isinstance(msg.content, str):
                _check_text(msg.content or "", f"messages[{i}].content")
                messages.append({"role": role, "content": msg.content or ""})
                continue
            parts = []
            for j, part in enumerate(msg.content):
                where = f"messages[{i}].content[{j}]"
                if isinstance(part, TextPart):
                    _check_text(part.text, where + ".text")
                    parts.append({"type": "text", "text": part.text})
                    continue
                if msg.role != "user":
                    raise InvalidRequestError(f"media parts are only allowed in user messages ({where})", param=where)
                media.append(_media_input(part, req))
                parts.append({"type": part.type})
            messages.append({"role": role, "content": parts})
        if len(media) > self.settings.max_media_per_request:
            raise InvalidRequestError(f"the request has {len(media)} media parts; the limit is "
                                      f"{self.settings.max_media_per_request}", param="messages", code="too_many_media")
        return messages, media

    # --- captions --------------------------------------------------------------------------------------
    async def caption_job(self, req: CaptionRequest, upload: bytes | None = None) -> Job:
        if (upload is None) == (req.url is None):
            raise InvalidRequestError("send either a media url (JSON) or a file (multipart), not both or neither",
                                      param="url")
        if upload is not None and len(upload) > self.settings.max_media_bytes:
            raise MediaTooLargeError(f"the upload is {len(upload)} bytes; the limit is {self.settings.max_media_bytes}",
                                     param="file")
        text = req.prompt if req.prompt is not None else DEFAULT_CAPTION_PROMPT
        _check_text(text, "prompt")
        item = MediaInput(None, url=None if upload is not None else req.url, data=upload,
                          token_kept_ratio=req.token_kept_ratio, num_frames=req.num_frames)
        sampling = self._sampling(req.temperature, None, req.max_tokens)
        job = await self._job(None, [item], sampling, bool(req.stream), include_usage=True, caption_text=text)
        job.id = "caption-" + job.id.split("-", 1)[1]
        return job

    # --- shared ----------------------------------------------------------------------------------------
    def _sampling(self, temperature, top_p, max_tokens) -> dict[str, Any]:
        return {
            "temperature": 0.0 if temperature is None else temperature,
            "top_p": 1.0 if top_p is None else top_p,
            "max_new_tokens": max_tokens if max_tokens is not None else self.settings.default_max_tokens,
        }

    async def _job(self, prompt, media, sampling, stream, include_usage, caption_text=None, scope="") -> Job:
        for item in media:  # before fetching anything
            if (item.num_frames or 0) > self.settings.max_frames:
                raise InvalidRequestError(f"num_frames must be at most {self.settings.max_frames}, "
                                          f"got {item.num_frames}", param="num_frames")
        datas = await self._fetch_all(media)
        images, videos, described = [], [], []
        for item, data in zip(media, datas, strict=True):
            kind = item.kind or _sniff_kind(data)
            ratio = item.token_kept_ratio or self.settings.default_token_kept_ratio
            entry = {"data": data, "token_kept_ratio": ratio}
            if item.uuid is not None:
                entry.update(media_id=item.uuid, media_scope=scope)
            frames = 1
            if kind == "video":
                frames = entry["num_frames"] = item.num_frames or self.settings.default_num_frames
            (videos if kind == "video" else images).append(entry)
            described.append({"kind": kind, "token_kept_ratio": ratio, "num_frames": frames})
            self.metrics.kept_ratio.labels(kind).observe(ratio)
        if caption_text is not None:  # captions: the kind is known only now
            part = {"type": "video_url" if described[0]["kind"] == "video" else "image_url"}
            messages = [{"role": "user", "content": [part, {"type": "text", "text": caption_text}]}]
            prompt = self.engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        request = GenerateRequest(prompt=prompt, images=images, videos=videos, sampling_params=sampling)
        return Job(request, self.settings.served_model_name, stream, include_usage, described)

    async def _fetch_all(self, media: list[MediaInput]) -> list[bytes]:
        """All items concurrently; the first failure cancels the rest (no point fetching them)."""
        tasks = [asyncio.ensure_future(self._fetch(m)) for m in media]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # collect them: no "never retrieved" noise

    async def _fetch(self, item: MediaInput) -> bytes | None:
        if item.url is None and item.data is None:
            return None  # a uuid of cached media: nothing to fetch
        start = time.perf_counter()
        if item.data is not None:
            source, data = "upload", item.data
        else:
            source = item.url.split(":", 1)[0].lower() if ":" in item.url else "none"
            data = await fetch_media(item.url, self.limits)
        self.metrics.fetch.labels(source if source in ("http", "https", "data", "file", "upload") else "other").observe(
            time.perf_counter() - start)
        return data


def _media_input(part, req: ChatCompletionRequest) -> MediaInput:
    if part.type == "video_url":
        v = part.video_url or VideoURL()  # absent with a uuid alone: the request-level options apply
        return MediaInput("video", url=v.url, token_kept_ratio=v.token_kept_ratio or req.token_kept_ratio,
                          num_frames=v.num_frames or req.num_frames, uuid=part.uuid)
    i = part.image_url or ImageURL()
    return MediaInput("image", url=i.url, token_kept_ratio=i.token_kept_ratio or req.token_kept_ratio, uuid=part.uuid)


def _scope(api_key: bytes | None) -> str:
    """A caller's namespace for media uuids: a digest of its API key (never the key), "" without one."""
    return hashlib.sha256(api_key).hexdigest()[:32] if api_key else ""


def _check_text(text: str, param: str) -> None:
    """The template's media markers may not come from users: they would shift every media span."""
    for marker in MARKERS:
        if marker in text:
            raise InvalidRequestError(f"text may not contain the media marker {marker}; send media as "
                                      "image_url / video_url parts", param=param)


def _sniff_kind(data: bytes) -> str:
    """'image' when Pillow recognises the header, else 'video' (decided by content, never by name)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)):
            return "image"
    except Image.DecompressionBombError:
        return "image"  # an image all right; its decoder refuses it with a 413
    except (UnidentifiedImageError, OSError, ValueError):
        return "video"
