"""A chat or caption request → one engine job: the checks OpenAI's fields need, the chat template, the media
items (options checked, defaults applied, bytes fetched), the sampling parameters.

Greedy by default (temperature 0): AuroraCap's reference decoding. ``temperature``, ``top_p``,
``max_completion_tokens``/``max_tokens``, ``stop``, ``seed``, the penalties, vLLM's and SGLang's sampling extras
and our extensions are honoured (``api.options``: where the frame-sampling options may sit, which wins);
OpenAI, vLLM and SGLang features AuroraCap cannot serve (n > 1, logprobs, tools, audio, structured output, …)
are refused with a 400 that names them. A request asks for at most ``frame_budget`` frames over all its media
(an image is one frame; a video as many as its rule may keep), so a video sent as frames fits as a video does.
Cheap checks come first, so text that would cost seconds to template and tokenize is refused before it is
touched: all message text (or a caption prompt) under ``--max-text-chars``, each stop sequence under
``--max-stop-chars``, ``max_tokens`` under the model's context length. Templating runs in a worker thread
(Jinja is pure Python: the event loop keeps serving meanwhile). Media is fetched here (``fetch_media``: byte,
time, scheme and address limits) and handed to the engine as bytes, so the engine never touches a URL or the
file system for a request.
A part's ``uuid`` becomes the item's ``media_id``, with the caller's ``media_scope`` (a digest of its API key),
so one key's ids can never name another key's media; a part with a uuid and no url is not fetched at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from aurora_serve.api.metrics import Metrics
from aurora_serve.api.options import Options, check_foreign, request_options, sampling_extras
from aurora_serve.api.protocol import CaptionRequest, ChatCompletionRequest, TextPart
from aurora_serve.config import ServerSettings
from aurora_serve.engine import GenerateRequest
from aurora_serve.errors import InvalidRequestError, MediaTooLargeError, NotFoundError
from aurora_serve.media.fetch import FetchLimits, fetch_media
from aurora_serve.media.item import MediaItem
from aurora_serve.model.prompt import IMAGE_MARKER, VIDEO_MARKER, caption_prompt

DEFAULT_CAPTION_PROMPT = "Describe the video in detail."
FETCH_SOURCES = ("http", "https", "data", "file", "upload")
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
class Job:
    """One generation, ready for the engine, plus what the answer needs."""

    request: GenerateRequest
    media: list[MediaItem]  # the request's items without their bytes (kind, ρ, frames asked for)
    stream: bool
    include_usage: bool
    continuous_usage: bool = False  # the usage so far on every chunk (vLLM's continuous_usage_stats)
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    frames: list[int] | None = None  # frames each item got, in request order, once the engine has said


@dataclass(frozen=True)
class ChatPaths:
    """Where each chat message's content sits in the request as sent, for error params: ``messages.{i}.content``
    unless the request was another shape (the Responses API's ``input``), whose parts carry their options."""

    contents: list[str] | None = None
    options_in_part: bool = False

    def content(self, i: int) -> str:
        return self.contents[i] if self.contents else f"messages.{i}.content"

    def part(self, i: int, j: int) -> str:
        return f"{self.content(i)}.{j}"

    def options(self, i: int, j: int, part_type: str) -> str:
        return self.part(i, j) if self.options_in_part else f"{self.part(i, j)}.{part_type}"


class JobBuilder:
    def __init__(self, settings: ServerSettings, tokenizer, context_length: int, metrics: Metrics):
        self.settings, self.policy, self.tokenizer, self.metrics = settings, settings.engine.media, tokenizer, metrics
        self.context_length = context_length
        self.limits = FetchLimits(
            max_bytes=settings.max_media_bytes, max_data_url_bytes=settings.max_data_url_bytes,
            connect_timeout=settings.media_connect_timeout, total_timeout=settings.media_timeout,
            max_redirects=settings.media_max_redirects, allow_hosts=tuple(settings.allow_media_hosts),
            allowed_local_media_path=settings.allowed_local_media_path,
        )

    # --- chat ------------------------------------------------------------------------------------------
    async def chat(self, req: ChatCompletionRequest, api_key: bytes | None = None,
                   paths: ChatPaths = ChatPaths()) -> Job:
        """``api_key``: the caller's bearer token (already checked by the gate); scopes media uuids.
        ``chat_template_kwargs`` is accepted and not used: AuroraCap's template reads no variables (and HF's
        renderer takes some names, such as ``tokenize``, as its own arguments)."""
        self._check_chat(req)
        messages, media, urls = self._template_messages(req, _scope(api_key), paths)
        prompt = await asyncio.to_thread(self.tokenizer.apply_chat_template, messages, tokenize=False,
                                         add_generation_prompt=True)
        sampling = self._sampling(req.temperature, req.top_p, req.max_completion_tokens or req.max_tokens)
        sampling.update(sampling_extras(req, sampling["max_new_tokens"]))
        if req.stop is not None:
            sampling["stop"] = req.stop
        if req.seed is not None:
            sampling["sampling_seed"] = req.seed
        for name in ("frequency_penalty", "presence_penalty", "ignore_eos"):
            if getattr(req, name) is not None:
                sampling[name] = getattr(req, name)
        media = await self._with_bytes(media, urls)
        options = req.stream_options
        job = self._job(prompt, media, sampling, bool(req.stream), bool(options and options.include_usage))
        job.continuous_usage = bool(options and options.continuous_usage_stats)
        return job

    def _check_chat(self, req: ChatCompletionRequest) -> None:
        if req.model != self.settings.served_model_name:
            raise NotFoundError(f"The model `{req.model}` does not exist; this server serves "
                                f"`{self.settings.served_model_name}`", param="model", code="model_not_found")
        for name, refused, why in UNSUPPORTED:
            if refused(getattr(req, name)):
                raise InvalidRequestError(why, param=name, code="unsupported_parameter")
        check_foreign(req.foreign)
        if req.stream_options is not None and not req.stream:
            raise InvalidRequestError("stream_options is only allowed when stream is true", param="stream_options")
        stops = [req.stop] if isinstance(req.stop, str) else req.stop or []
        if len(stops) > 4:
            raise InvalidRequestError("stop takes at most 4 sequences", param="stop")
        if any(len(stop) > self.settings.max_stop_chars for stop in stops):
            raise InvalidRequestError(f"each stop sequence may have at most {self.settings.max_stop_chars} "
                                      "characters", param="stop", code="stop_too_long")
        self._check_max_tokens(req.max_completion_tokens, "max_completion_tokens")
        self._check_max_tokens(req.max_tokens, "max_tokens")

    def _check_max_tokens(self, value: int | None, param: str) -> None:
        if value is not None and value >= self.context_length:
            raise InvalidRequestError(f"{param} is {value}; this model's context is {self.context_length} tokens, "
                                      "prompt and completion together", param=param, code="max_tokens_too_large")

    def _template_messages(self, req: ChatCompletionRequest, scope: str, paths: ChatPaths):
        """Messages as the chat template reads them (media parts become bare markers), the media items in
        order (without bytes yet), and where each one's bytes are (None: cached under its uuid)."""
        messages, media, urls = [], [], []
        text = _TextBudget(self.settings.max_text_chars)
        shared = request_options(req)
        for i, msg in enumerate(req.messages):
            role = "system" if msg.role == "developer" else msg.role
            if msg.content is None or isinstance(msg.content, str):
                text.take(msg.content or "", paths.content(i))
                messages.append({"role": role, "content": msg.content or ""})
                continue
            parts = []
            for j, part in enumerate(msg.content):
                where = paths.part(i, j)
                if isinstance(part, TextPart):
                    text.take(part.text, where + ".text")
                    parts.append({"type": "text", "text": part.text})
                    continue
                if msg.role != "user":
                    raise InvalidRequestError(f"media parts are only allowed in user messages ({where})", param=where)
                options = Options.of(getattr(part, part.type) or {}, paths.options(i, j, part.type)).over(shared)
                item = self.policy.item("video" if part.type == "video_url" else "image", **options.values,
                                        param=options.places, media_id=part.uuid,
                                        media_scope=scope if part.uuid is not None else "")
                media.append(item)
                urls.append(getattr(getattr(part, part.type), "url", None))
                parts.append({"type": part.type})
            messages.append({"role": role, "content": parts})
        self._check_budget(media)
        return messages, media, urls

    def _check_budget(self, media: list[MediaItem]) -> None:
        """The per-request media limit follows the frames asked for (an image is one), not the part count."""
        cap = self.settings.max_media_per_request
        if cap and len(media) > cap:
            raise InvalidRequestError(f"the request has {len(media)} media parts; the limit is {cap}",
                                      param="messages", code="too_many_media")
        frames = sum(m.sampling.most_frames for m in media)
        if frames > self.settings.frame_budget:
            raise InvalidRequestError(
                f"the request asks for up to {frames} frames over its {len(media)} media parts (an image is one, a "
                f"video what its num_frames or max_frames allows); this server takes at most "
                f"{self.settings.frame_budget} per request", param="messages", code="too_many_frames")

    # --- captions --------------------------------------------------------------------------------------
    async def caption(self, req: CaptionRequest, upload: bytes | None = None) -> Job:
        if (upload is None) == (req.url is None):
            raise InvalidRequestError("send either a media url (JSON) or a file (multipart), not both or neither",
                                      param="url")
        if upload is not None and len(upload) > self.settings.max_media_bytes:
            raise MediaTooLargeError(f"the upload is {len(upload)} bytes; the limit is {self.settings.max_media_bytes}",
                                     param="file")
        text = req.prompt if req.prompt is not None else DEFAULT_CAPTION_PROMPT
        _TextBudget(self.settings.max_text_chars).take(text, "prompt")
        self._check_max_tokens(req.max_tokens, "max_tokens")
        # The kind is left open: it is decided from the bytes once they are here.
        options = Options.of(req)
        item = self.policy.item(None, **options.values, param=options.places)
        [item] = await self._with_bytes([item], [upload if upload is not None else req.url])
        sampling = self._sampling(req.temperature, None, req.max_tokens)
        prompt = await asyncio.to_thread(caption_prompt, self.tokenizer, item.kind, text)
        job = self._job(prompt, [item], sampling, bool(req.stream), include_usage=True)
        job.id = "caption-" + job.id.split("-", 1)[1]
        return job

    # --- shared ----------------------------------------------------------------------------------------
    def _sampling(self, temperature, top_p, max_tokens) -> dict[str, Any]:
        return {
            "temperature": 0.0 if temperature is None else temperature,
            "top_p": 1.0 if top_p is None else top_p,
            "max_new_tokens": max_tokens if max_tokens is not None else self.settings.default_max_tokens,
        }

    def _job(self, prompt: str, media: list[MediaItem], sampling: dict, stream: bool, include_usage: bool) -> Job:
        for item in media:
            self.metrics.kept_ratio.labels(item.kind).observe(item.token_kept_ratio)
        request = GenerateRequest(prompt=prompt, images=[m for m in media if m.kind == "image"],
                                  videos=[m for m in media if m.kind == "video"], sampling_params=sampling)
        return Job(request, [m.without_data() for m in media], stream, include_usage)

    async def _with_bytes(self, media: list[MediaItem], sources: list[str | bytes | None]) -> list[MediaItem]:
        """Every item with its bytes, fetched concurrently; the first failure cancels the rest."""
        tasks = [asyncio.ensure_future(self._fetch(s)) for s in sources]
        try:
            datas = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # collect them: no "never retrieved" noise
        return [m if d is None else m.with_data(d) for m, d in zip(media, datas, strict=True)]

    async def _fetch(self, source: str | bytes | None) -> bytes | None:
        if source is None:
            return None  # a uuid of cached media: nothing to fetch
        start = time.perf_counter()
        if isinstance(source, bytes):
            kind, data = "upload", source
        else:
            kind = source.split(":", 1)[0].lower() if ":" in source else "none"
            data = await fetch_media(source, self.limits)
        self.metrics.fetch.labels(kind if kind in FETCH_SOURCES else "other").observe(time.perf_counter() - start)
        return data


def _scope(api_key: bytes | None) -> str:
    """A caller's namespace for media uuids: a digest of its API key (never the key), "" without one."""
    return hashlib.sha256(api_key).hexdigest()[:32] if api_key else ""


class _TextBudget:
    """A request's text, counted as it is met; refused (400 naming the field) once over ``limit`` characters."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, text: str, param: str) -> None:
        self.used += len(text)
        if self.used > self.limit:
            raise InvalidRequestError(f"{param}: the request's text is over the limit of {self.limit} characters "
                                      "(all message text counts together)", param=param, code="text_too_long")
        _check_markers(text, param)


def _check_markers(text: str, param: str) -> None:
    """The template's media markers may not come from users: they would shift every media span."""
    for marker in (IMAGE_MARKER, VIDEO_MARKER):
        if marker in text:
            raise InvalidRequestError(f"text may not contain the media marker {marker}; send media as "
                                      "image_url / video_url parts", param=param)
