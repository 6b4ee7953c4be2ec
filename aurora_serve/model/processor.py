"""AuroraCap's SGLang multimodal processor: media items → frames → CLIP pixels → expanded prompt ids + items.

Each item arrives as a ``MediaItem`` (built by the front end or the engine seam, options checked and defaults
applied). Here it is decoded off the event loop (SGLang's IO thread pool) under the request's budgets
(``media.budget``: frames decoded, seconds, pixels; a dropped request stops its decodes at their next packet),
each sampled frame resized and cropped as soon as it is decoded, and handed to the scheduler as uint8 crops
(the model normalises them on its device: a quarter of float32's bytes). The prompt is expanded with exactly
``frames × tokens_per_frame(ρ)`` placeholders, and ρ, the frame count and the geometry are folded into the
item hash, so the radix cache and SGLang's embedding cache never reuse a span across ratios. The SGLang item
carries the ``MediaItem`` (bytes dropped) to the model as one attribute, ``aurora_media``.

The content half of the item hash is the SHA-256 of the media bytes plus everything that turns them into
pixels (kind, frames asked for, resolution, decoder, and the PyAV / Pillow versions), the same identity the
processed-media cache trusts, rather than SGLang's hash of the 14 MB pixel tensor (~7 ms per 8-frame video
on this machine's CPU, in the process that serves HTTP). Identical bytes always give identical pixels; two
encodings of the same pixels no longer share a cache entry, which costs nothing in practice.

``media_id`` (a caller's uuid) within ``media_scope`` (the front end's caller namespace, default "") stands in
for the bytes' digest in the media identity: the item is cached under it, and an item with a ``media_id`` and
no data is served from that cache or refused (400) when it is not there (never seen, evicted, another frame
count, another replica). Error messages name the id, never the scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict

import av
import PIL
import torch

from sglang.srt.managers.schedule_batch import Modality, MultimodalDataItem, MultimodalProcessorOutput
from sglang.srt.multimodal.cache import resolve_multimodal_item_hash
from sglang.srt.multimodal.processors.base_processor import BaseMultimodalProcessor

from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.budget import DecodeBudget, RequestBudget
from aurora_serve.media.decode import load_frames
from aurora_serve.media.item import MediaItem
from aurora_serve.media.preprocess import clip_crop
from aurora_serve.model.auroracap import AuroraCapForConditionalGeneration
from aurora_serve.model.media_cache import ProcessedMediaCache, media_digest
from aurora_serve.model.prompt import expand_prompt
from aurora_serve.model.spec import AuroraOverride, AuroraSpec


FRAMES_REPORTS_KEPT = 4096


def _pipeline(decode_backend: str) -> str:
    """What else turns the same bytes into pixels: part of the media identity (a decoder upgrade changes it)."""
    if decode_backend == "decord":
        import decord

        return f"decord{decord.__version__}-pillow{PIL.__version__}"
    return f"{decode_backend}-av{av.__version__}-pillow{PIL.__version__}"


class AuroraCapProcessor(BaseMultimodalProcessor):
    models = [AuroraCapForConditionalGeneration]

    def __init__(self, hf_config, server_args, _processor, *args, **kwargs):
        super().__init__(hf_config, server_args, _processor, *args, **kwargs)
        self.spec = AuroraSpec.from_hf_config(hf_config)
        self.runtime = runtime = AuroraOverride.of(hf_config).runtime
        self.text_tokenizer = getattr(_processor, "tokenizer", _processor)
        self.decode_backend = runtime.decode_backend
        self.pipeline = _pipeline(self.decode_backend)
        self.media_cache = ProcessedMediaCache(runtime.media_cache_mb * 1024 * 1024)
        # Frames each request's items actually got ({"image": [...], "video": [...]} by rid), for the front end's
        # usage report: the processor runs in the engine's own process, so the engine reads it from here.
        self.frames_sampled: OrderedDict[str, dict[str, list[int]]] = OrderedDict()

    async def process_mm_data_async(self, image_data, audio_data, input_text, request_obj, **kwargs):
        media = [_item(x, "image") for x in image_data or []]
        media += [_item(x, "video") for x in getattr(request_obj, "video_data", None) or []]
        if not media:
            return None
        if audio_data:
            raise InvalidRequestError("AuroraCap takes images and videos, not audio", param="audio_data")
        if not isinstance(input_text, str):
            raise InvalidRequestError("multimodal requests need a text prompt (not input_ids)", param="prompt")
        prepared = await self._prepare_all(media)
        spans = [(p.shape[0], self.spec.vision.tokens_per_frame(m.token_kept_ratio)) for m, (_, p) in zip(media, prepared)]
        n_images = len(image_data or [])
        ids, img_offsets, vid_offsets = expand_prompt(input_text, spans[:n_images], spans[n_images:], self._encode,
                                                      self.spec.image_token_id)
        limit = kwargs.get("max_req_input_len")
        if limit is not None and len(ids) > limit:
            raise InvalidRequestError(
                f"the prompt expands to {len(ids)} tokens, over this server's limit of {limit}; "
                "use fewer frames (num_frames) or a lower token_kept_ratio",
                param="num_frames",
            )
        items = [self._sglang_item(m, key, p, off) for m, (key, p), off in zip(media, prepared, img_offsets + vid_offsets)]
        self._report(getattr(request_obj, "rid", None), [(m.kind, p.shape[0]) for m, (_, p) in zip(media, prepared)])
        pid = self.spec.image_token_id
        return MultimodalProcessorOutput(mm_items=items, input_ids=ids, im_token_id=pid, video_token_id=pid)

    # --- helpers ------------------------------------------------------------------------------------
    def _report(self, rid, frames: list[tuple[str, int]]) -> None:
        if not isinstance(rid, str):
            return
        self.frames_sampled[rid] = {kind: [n for k, n in frames if k == kind] for kind in ("image", "video")}
        while len(self.frames_sampled) > FRAMES_REPORTS_KEPT:  # requests whose reader went away
            self.frames_sampled.popitem(last=False)

    def _encode(self, chunk: str, add_special_tokens: bool) -> list[int]:
        return self.text_tokenizer(chunk, add_special_tokens=add_special_tokens).input_ids

    def _key(self, m: MediaItem) -> str:
        """The media's identity: its bytes (or the caller's id) and everything that turns them into pixels."""
        media = f"id:{m.media_scope}/{m.media_id}" if m.media_id is not None else media_digest(m.data)
        return f"{media}:{m.kind}:{m.sampling.identity()}:{self.spec.vision.image_size}:{self.pipeline}"

    async def _prepare_all(self, media: list[MediaItem]) -> list[tuple[str, torch.Tensor]]:
        """Every item's identity and crops, decoded concurrently on the IO pool. When the request is dropped or
        one item fails, the others' decodes are told to stop (they check at every packet)."""
        loop = asyncio.get_running_loop()
        request = RequestBudget(self.runtime.max_request_pixels, self.runtime.max_frame_pixels)
        futures = [loop.run_in_executor(self.io_executor, self._prepare, m, request) for m in media]
        try:
            return await asyncio.gather(*futures)
        except BaseException:
            request.cancelled.set()
            for future in futures:  # their DecodeCancelled is expected: nobody needs to hear of it
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise

    def _prepare(self, m: MediaItem, request: RequestBudget) -> tuple[str, torch.Tensor]:
        """The media's identity and its ``[F, S, S, 3]`` uint8 crops (from the processed-media cache or decoded
        now, under ``request``'s budgets)."""
        key = self._key(m)
        pixels = self.media_cache.get(key)
        if pixels is None and m.data is None:
            raise InvalidRequestError(
                f"no cached {m.kind} has uuid {m.media_id!r}"
                + (f" with {m.sampling.describe()}" if m.kind == "video" else "")
                + " on this server (never sent, evicted, or sent to another replica); send the url with the uuid",
                param="uuid", code="media_not_cached",
            )
        if pixels is None:
            size = self.spec.vision.image_size
            budget = DecodeBudget(self.runtime.max_decoded_frames, self.runtime.decode_timeout, request)
            crops = load_frames(m.data, m.kind, m.sampling, self.decode_backend, budget=budget,
                                transform=lambda frame: clip_crop(frame, size))
            pixels = torch.from_numpy(crops)
            self.media_cache.put(key, pixels)
        return key, pixels

    def _sglang_item(self, m: MediaItem, key: str, pixels: torch.Tensor, offsets: list) -> MultimodalDataItem:
        modality = Modality.IMAGE if m.kind == "image" else Modality.VIDEO
        item = MultimodalDataItem(modality=modality, feature=pixels, offsets=offsets)
        item.aurora_media = m.without_data()  # the model reads ρ from it; the bytes need not cross processes
        tokens_per_frame = self.spec.vision.tokens_per_frame(m.token_kept_ratio)
        identity = {
            "model": "auroracap",
            "kind": m.kind,
            "frames": int(pixels.shape[0]),
            "sampling": m.sampling.identity(),
            "tokens_per_frame": tokens_per_frame,
            "token_kept_ratio": m.token_kept_ratio,
            "image_size": self.spec.vision.image_size,
        }
        ns = "sha256:" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        # the key is the content's identity (module docstring), before ρ and F are folded in
        content = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
        item.hash = resolve_multimodal_item_hash(existing_hash=content, namespace=ns)
        return item


def _item(value, kind: str) -> MediaItem:
    """Items reach the processor as ``MediaItem``s (``AuroraEngine`` parses engine callers' dicts once)."""
    if not isinstance(value, MediaItem) or value.kind != kind:
        raise InvalidRequestError(f"{kind} items must be MediaItems of kind {kind!r} (send requests through "
                                  f"aurora_serve.engine.AuroraEngine), got {type(value).__name__}")
    return value
