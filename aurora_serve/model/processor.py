"""AuroraCap's SGLang multimodal processor: media → frames → CLIP pixels → expanded prompt ids + items.

Per item it reads ``token_kept_ratio`` and ``num_frames`` (item-level options over request-level ones),
decodes off the event loop (SGLang's IO thread pool), expands the prompt with exactly
``frames × tokens_per_frame(ρ)`` placeholders, and folds ρ, the frame count and the geometry into the
item hash, so the radix cache and SGLang's embedding cache never reuse a span across ratios.

The content half of the item hash is the SHA-256 of the media bytes plus everything that turns them into
pixels (kind, frames asked for, resolution, decoder, and the PyAV / Pillow versions), the same identity the
processed-media cache trusts, rather than SGLang's hash of the 14 MB pixel tensor (~7 ms per 8-frame video
on this machine's CPU, in the process that serves HTTP). Identical bytes always give identical pixels; two
encodings of the same pixels no longer share a cache entry, which costs nothing in practice.

Accepted media per item: raw bytes, a local path, a ``data:`` URL, a ``VideoData`` (options in
``preprocess_kwargs``) or a dict ``{"url"|"data": …, "token_kept_ratio": …, "num_frames": …, "media_id": …,
"media_scope": …}``. Remote URLs are fetched by the aurora-serve front end (with its address and size guards),
never here.

``media_id`` (a caller's uuid) within ``media_scope`` (the front end's caller namespace, default "") stands in
for the bytes' digest in the media identity: the item is cached under it, and an item with a ``media_id`` and
no data is served from that cache or refused (400) when it is not there (never seen, evicted, another frame
count, another replica). Error messages name the id, never the scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import av
import PIL
import torch

from sglang.srt.managers.schedule_batch import Modality, MultimodalDataItem, MultimodalProcessorOutput
from sglang.srt.multimodal.cache import resolve_multimodal_item_hash
from sglang.srt.multimodal.processors.base_processor import BaseMultimodalProcessor

from aurora_serve.errors import InvalidRequestError, MediaError
from aurora_serve.media.decode import load_frames
from aurora_serve.media.fetch import FetchLimits
from aurora_serve.media.local import decode_data_url
from aurora_serve.media.preprocess import clip_preprocess
from aurora_serve.model.auroracap import AuroraCapForConditionalGeneration
from aurora_serve.model.config import AuroraSpec
from aurora_serve.model.media_cache import ProcessedMediaCache, media_digest
from aurora_serve.model.prompt import MediaSlot, expand_prompt
from aurora_serve.model.token_count import validate_ratio

OPTION_KEYS = ("token_kept_ratio", "num_frames")
DATA_URL_LIMITS = FetchLimits()  # engine callers' data: URLs get the front end's default size caps


def _pipeline(decode_backend: str) -> str:
    """What else turns the same bytes into pixels: part of the media identity (a decoder upgrade changes it)."""
    if decode_backend == "decord":
        import decord

        return f"decord{decord.__version__}-pillow{PIL.__version__}"
    return f"{decode_backend}-av{av.__version__}-pillow{PIL.__version__}"


@dataclass(frozen=True)
class MediaRequest:
    kind: str  # "image" | "video"
    source: bytes | str | None  # None: cached media named by media_id
    token_kept_ratio: float
    num_frames: int
    media_id: str | None = None
    media_scope: str = ""


@dataclass(frozen=True)
class PreparedMedia:
    request: MediaRequest
    pixels: torch.Tensor  # [F, 3, S, S] float32
    tokens_per_frame: int
    content_hash: int  # hash of the media and its decoding (module docstring), before ρ/F are folded in


class AuroraCapProcessor(BaseMultimodalProcessor):
    models = [AuroraCapForConditionalGeneration]

    def __init__(self, hf_config, server_args, _processor, *args, **kwargs):
        super().__init__(hf_config, server_args, _processor, *args, **kwargs)
        self.spec = AuroraSpec.from_hf_config(hf_config)
        extra = dict(getattr(hf_config, "aurora", None) or {})
        self.text_tokenizer = getattr(_processor, "tokenizer", _processor)
        self.decode_backend = extra.get("decode_backend", "pyav")
        self.pipeline = _pipeline(self.decode_backend)
        self.max_frames = int(extra.get("max_frames", 64))
        self.media_cache = ProcessedMediaCache(int(extra.get("media_cache_mb", 512)) * 1024 * 1024)

    async def process_mm_data_async(self, image_data, audio_data, input_text, request_obj, **kwargs):
        videos = list(getattr(request_obj, "video_data", None) or [])
        images = list(image_data or [])
        if not videos and not images:
            return None
        if audio_data:
            raise InvalidRequestError("AuroraCap takes images and videos, not audio", param="audio_data")
        if not isinstance(input_text, str):
            raise InvalidRequestError("multimodal requests need a text prompt (not input_ids)", param="prompt")
        defaults = self._request_options(request_obj)
        reqs = [self._media_request("image", x, defaults) for x in images]
        reqs += [self._media_request("video", x, defaults) for x in videos]
        loop = asyncio.get_running_loop()
        prepared = await asyncio.gather(*(loop.run_in_executor(self.io_executor, self._prepare, r) for r in reqs))
        img, vid = prepared[: len(images)], prepared[len(images):]
        slot = lambda p: MediaSlot(p.request.kind, p.pixels.shape[0], p.tokens_per_frame)  # noqa: E731
        ids, img_offsets, vid_offsets = expand_prompt(
            input_text, [slot(p) for p in img], [slot(p) for p in vid], self._encode, self.spec.image_token_id
        )
        limit = kwargs.get("max_req_input_len")
        if limit is not None and len(ids) > limit:
            raise InvalidRequestError(
                f"the prompt expands to {len(ids)} tokens, over this server's limit of {limit}; "
                "use fewer frames (num_frames) or a lower token_kept_ratio",
                param="num_frames",
            )
        items = [self._item(p, off) for p, off in zip(img + vid, img_offsets + vid_offsets)]
        pid = self.spec.image_token_id
        return MultimodalProcessorOutput(mm_items=items, input_ids=ids, im_token_id=pid, video_token_id=pid)

    # --- helpers ------------------------------------------------------------------------------------
    def _encode(self, chunk: str, add_special_tokens: bool) -> list[int]:
        return self.text_tokenizer(chunk, add_special_tokens=add_special_tokens).input_ids

    def _request_options(self, request_obj) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        for name in ("mm_processor_kwargs", "video_config"):
            value = getattr(request_obj, name, None)
            if isinstance(value, dict):
                opts.update({k: value[k] for k in OPTION_KEYS if k in value})
        return opts

    def _media_request(self, kind: str, item: Any, defaults: dict[str, Any]) -> MediaRequest:
        opts = dict(defaults)
        if hasattr(item, "url") and hasattr(item, "preprocess_kwargs"):  # sglang VideoData
            source, extra = item.url, item.preprocess_kwargs or {}
        elif isinstance(item, dict):
            source = item.get("data", item.get("url"))
            extra = {**(item.get("preprocess_kwargs") or {}), **item}
        else:
            source, extra = item, {}
        if "max_frames" in extra and "num_frames" not in extra:  # SGLang's OpenAI video_url field
            extra = {**extra, "num_frames": extra["max_frames"]}
        opts.update({k: extra[k] for k in OPTION_KEYS if k in extra})
        ratio = opts.get("token_kept_ratio", self.spec.default_token_kept_ratio)
        frames = 1 if kind == "image" else opts.get("num_frames", self.spec.default_num_frames)
        try:
            ratio = validate_ratio(ratio)
        except (TypeError, ValueError) as e:
            raise InvalidRequestError(str(e), param="token_kept_ratio") from None
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= self.max_frames:
            raise InvalidRequestError(
                f"num_frames must be an integer in [1, {self.max_frames}], got {frames!r}", param="num_frames"
            )
        media_id, scope = extra.get("media_id"), extra.get("media_scope", "")
        if media_id is not None and (not isinstance(media_id, str) or not media_id):
            raise InvalidRequestError(f"media_id must be a non-empty string, got {media_id!r}", param="media_id")
        if not isinstance(scope, str) or "/" in scope:
            raise InvalidRequestError("media_scope must be a string without '/'", param="media_scope")
        if source is None and media_id is None:
            raise InvalidRequestError(f"{kind} item has no data or url", param=f"{kind}_data")
        source = None if source is None else _resolve_source(source)
        return MediaRequest(kind, source, ratio, frames, media_id, scope)

    def _prepare(self, req: MediaRequest) -> PreparedMedia:
        size = self.spec.vision.image_size
        media = f"id:{req.media_scope}/{req.media_id}" if req.media_id is not None else media_digest(req.source)
        key = f"{media}:{req.kind}:{req.num_frames}:{size}:{self.pipeline}"
        pixels = self.media_cache.get(key)
        if pixels is None and req.source is None:
            raise InvalidRequestError(
                f"no cached {req.kind} has uuid {req.media_id!r}"
                + (f" with num_frames={req.num_frames}" if req.kind == "video" else "")
                + " on this server (never sent, evicted, or sent to another replica); send the url with the uuid",
                param="uuid", code="media_not_cached",
            )
        if pixels is None:
            frames = load_frames(req.source, req.kind, req.num_frames, self.decode_backend)
            pixels = clip_preprocess(frames, size=size)
            self.media_cache.put(key, pixels)
        content_hash = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")  # the key is the identity
        return PreparedMedia(req, pixels, self.spec.vision.tokens_per_frame(req.token_kept_ratio), content_hash)

    def _item(self, p: PreparedMedia, offsets: list[tuple[int, int]]) -> MultimodalDataItem:
        modality = Modality.IMAGE if p.request.kind == "image" else Modality.VIDEO
        item = MultimodalDataItem(modality=modality, feature=p.pixels, offsets=offsets)
        item.token_kept_ratio = p.request.token_kept_ratio
        item.num_frames = int(p.pixels.shape[0])
        identity = {
            "model": "auroracap",
            "kind": p.request.kind,
            "frames": int(p.pixels.shape[0]),
            "requested_frames": p.request.num_frames,
            "tokens_per_frame": p.tokens_per_frame,
            "token_kept_ratio": p.request.token_kept_ratio,
            "image_size": self.spec.vision.image_size,
        }
        ns = "sha256:" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        item.hash = resolve_multimodal_item_hash(existing_hash=p.content_hash, namespace=ns)
        return item


def _resolve_source(source: Any) -> bytes | str:
    """bytes and local paths pass through; ``data:`` URLs are decoded; remote URLs are refused."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if not isinstance(source, str):
        raise InvalidRequestError(f"unsupported media item type {type(source).__name__}")
    if source.startswith("data:"):
        return decode_data_url(source, DATA_URL_LIMITS)
    if source.startswith("file://"):
        source = source[len("file://"):]
    if "://" in source:
        raise InvalidRequestError(
            "remote media URLs are fetched by the aurora-serve front end; pass bytes, a data: URL or a local path"
        )
    if not os.path.isfile(source):
        raise MediaError(f"media file not found: {source}")
    return source
