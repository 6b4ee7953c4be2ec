"""AuroraCap's SGLang multimodal processor: media items → frames → CLIP pixels → expanded prompt ids + items.

Each item arrives as a ``MediaItem`` (built by the front end or the engine seam, options checked and defaults
applied). ``MediaPreparer`` decodes it off the event loop (media worker processes) under the request's budgets
(``media.budget``: frames decoded, seconds, pixels; a dropped request stops its decodes at their next packet),
each sampled frame resized and cropped as soon as it is decoded; the crops go to the scheduler as uint8
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

import hashlib
import json
from collections import OrderedDict

import torch

from sglang.srt.managers.schedule_batch import Modality, MultimodalDataItem, MultimodalProcessorOutput
from sglang.srt.multimodal.cache import resolve_multimodal_item_hash
from sglang.srt.multimodal.processors.base_processor import BaseMultimodalProcessor

from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.item import MediaItem
from aurora_serve.model.auroracap import AuroraCapForConditionalGeneration
from aurora_serve.model.media_prep import MediaPreparer
from aurora_serve.model.prompt import expand_prompt
from aurora_serve.model.spec import AuroraOverride, AuroraSpec

FRAMES_REPORTS_KEPT = 4096


class AuroraCapProcessor(BaseMultimodalProcessor):
    models = [AuroraCapForConditionalGeneration]

    def __init__(self, hf_config, server_args, _processor, *args, **kwargs):
        super().__init__(hf_config, server_args, _processor, *args, **kwargs)
        self.spec = AuroraSpec.from_hf_config(hf_config)
        self.text_tokenizer = getattr(_processor, "tokenizer", _processor)
        self.media = MediaPreparer(AuroraOverride.of(hf_config).runtime, self.spec.vision.image_size, self.io_executor)
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
        prepared = await self.media.prepare_all(media)
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
