"""``AuroraProcessor``: prompts and media → ``input_ids`` with one placeholder per frame + CLIP ``pixel_values``.

Everything is the project's own code: the chat template (``model/chat_template.jinja``), the upstream
tokenization with one placeholder per frame (``model.prompt.expand_prompt``: split on the placeholder, BOS on
the first chunk only, frames of a video separated by a space), AuroraCap's frame sampler
(``media.sampling.sample_indices``, applied when a video has more than ``num_frames`` frames, default 8) and its
CLIP preprocessing (``media.preprocess.clip_crop`` + ``normalise``, Pillow bicubic, center crop, 378 px).

Why one placeholder per frame and not the final spans: a frame's span is ``tokens_per_frame(ρ)`` wide and the
README passes ρ to ``generate``, after the processor has run; the model widens the spans then
(``aurora_serve.hf.spans``). ``frames_per_media`` (frames of each image/video, in prompt order) lets
``generate`` take one ρ per media item.

Markers: ``<image>`` per image and ``<video>`` per video (what the chat template writes for ``{"type":
"image"}`` / ``{"type": "video"}``). AuroraCap's README writes ``{"type": "image"}`` for a video too: when only
videos are given and no prompt has a ``<video>`` marker, the ``<image>`` markers stand for the videos.
Batches are padded on the left (generation continues from the last column).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from transformers import AutoTokenizer, BatchFeature, ProcessorMixin

from aurora_serve.ckpt.layout import detect_layout, placeholder_id, resolve_model_dir
from aurora_serve.errors import ModelLoadError
from aurora_serve.hf.config import config_from_checkpoint
from aurora_serve.hf.spans import pad_rows
from aurora_serve.media.sampling import sample_indices
from aurora_serve.model.prompt import CHAT_TEMPLATE, IMAGE_MARKER, VIDEO_MARKER, expand_prompt

DEFAULT_NUM_FRAMES = 8  # upstream inference.py's --num_frm


class AuroraProcessor(ProcessorMixin):
    def __init__(self, tokenizer=None, chat_template=None, image_token_id: int | None = None,
                 image_size: int = 378, num_frames: int = DEFAULT_NUM_FRAMES, **kwargs):
        self.image_token_id = int(image_token_id) if image_token_id is not None else placeholder_id(tokenizer)
        self.image_size = int(image_size)
        self.num_frames = int(num_frames)
        chat_template = chat_template or getattr(tokenizer, "chat_template", None) or CHAT_TEMPLATE
        super().__init__(tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, cache_dir: str | None = None,
                        local_files_only: bool = False, num_frames: int = DEFAULT_NUM_FRAMES, **kwargs):
        """The processor of a checkpoint in either layout (or of a directory ``save_pretrained`` wrote)."""
        kwargs = {k: v for k, v in kwargs.items() if k not in ("trust_remote_code", "_from_auto", "revision")}
        if kwargs:
            raise TypeError(f"{cls.__name__}.from_pretrained got unsupported argument(s): {', '.join(sorted(kwargs))}")
        model_dir = resolve_model_dir(str(pretrained_model_name_or_path), cache_dir=cache_dir, offline=local_files_only)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        try:
            detect_layout(model_dir)
        except ModelLoadError:  # not a checkpoint: a processor saved on its own
            saved = json.loads((model_dir / "processor_config.json").read_text())
            return cls(tokenizer, image_token_id=saved["image_token_id"], image_size=saved["image_size"],
                       num_frames=saved.get("num_frames", num_frames))
        config = config_from_checkpoint(model_dir, tokenizer)
        return cls(tokenizer, image_token_id=config.image_token_id, image_size=config.vision_config.image_size,
                   num_frames=num_frames)

    def __call__(self, images=None, text=None, videos=None, *, num_frames: int | None = None,
                 padding_side: str = "left", return_tensors: str | None = None, **kwargs) -> BatchFeature:
        """Args:
            images: a PIL image or ``H×W×3`` uint8 array, or a list (or ``N×H×W×3`` stack) of them: all
                prompts' images, in order.
            text: a prompt or a list of prompts with one ``<image>``/``<video>`` marker per item.
            videos: one video (``F×H×W×3`` uint8 array, or a list of ``H×W×3`` frames) or a list of videos.
            num_frames: frames kept per video (AuroraCap's sampler; default ``self.num_frames``).
            padding_side: ``"left"`` (default, for generation) or ``"right"``.
            return_tensors: ``"pt"`` or None (both give torch tensors).

        Returns ``input_ids`` ``[B, L]`` and ``attention_mask`` (with text), ``pixel_values`` ``[F, 3, S, S]``
        float32 in placeholder order and ``frames_per_media`` ``[items]`` (with media).
        """
        if kwargs:
            raise TypeError(f"unsupported argument(s): {', '.join(sorted(kwargs))}")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        num_frames = self.num_frames if num_frames is None else int(num_frames)
        image_items = [[_frame(x)] for x in _flatten(images)]
        video_items = [_sampled(v, num_frames) for v in _videos(videos)]
        if any(len(v) == 0 for v in video_items):
            raise ValueError("a video has no frames")
        if text is None:
            return self._batch(None, image_items + video_items)
        texts = [text] if isinstance(text, str) else list(text)
        if video_items and not image_items and not any(VIDEO_MARKER in t for t in texts):
            texts = [t.replace(IMAGE_MARKER, VIDEO_MARKER) for t in texts]  # the README's {"type": "image"}
        rows, ordered = self._tokenize(texts, image_items, video_items)
        ids, mask = pad_rows([torch.tensor(row, dtype=torch.long) for row in rows], self._pad_id(), padding_side)
        return self._batch({"input_ids": ids, "attention_mask": mask}, ordered)

    def _tokenize(self, texts, image_items, video_items):
        wanted = {IMAGE_MARKER: sum(t.count(IMAGE_MARKER) for t in texts),
                  VIDEO_MARKER: sum(t.count(VIDEO_MARKER) for t in texts)}
        for marker, items, kind in ((IMAGE_MARKER, image_items, "image"), (VIDEO_MARKER, video_items, "video")):
            if wanted[marker] != len(items):
                raise ValueError(f"the prompts have {wanted[marker]} {marker} marker(s) but {len(items)} {kind}(s) "
                                 f"were given; put one {marker} where each {kind} goes")
        rows, ordered, next_image, next_video = [], [], 0, 0
        for t in texts:
            images = image_items[next_image:next_image + t.count(IMAGE_MARKER)]
            videos = video_items[next_video:next_video + t.count(VIDEO_MARKER)]
            next_image, next_video = next_image + len(images), next_video + len(videos)
            ids, image_spans, video_spans = expand_prompt(
                t, [(len(f), 1) for f in images], [(len(f), 1) for f in videos], self._encode, self.image_token_id)
            # media in the order their placeholders appear, which is the order the model splices them in
            starts = [(spans[0][0], frames) for spans, frames in zip(image_spans + video_spans, images + videos)]
            ordered += [frames for _, frames in sorted(starts, key=lambda s: s[0])]
            if ids.count(self.image_token_id) != sum(len(f) for f in images + videos):
                raise ValueError(f"the prompt's text tokenizes to the placeholder id {self.image_token_id} "
                                 f"itself (characters the tokenizer maps to its unknown token?): {t!r}")
            rows.append(ids)
        return rows, ordered

    def _batch(self, text_inputs: dict | None, items: list[list]) -> BatchFeature:
        # Pillow is needed to preprocess only: the model and the GPU benchmark import this package without it.
        from aurora_serve.media.preprocess import clip_crop, normalise

        data = dict(text_inputs or {})
        if items:
            crops = np.stack([clip_crop(frame, self.image_size) for frames in items for frame in frames])
            data["pixel_values"] = normalise(crops)
            data["frames_per_media"] = torch.tensor([len(f) for f in items], dtype=torch.long)
        return BatchFeature(data=data)

    def _encode(self, chunk: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(chunk, add_special_tokens=add_special_tokens).input_ids

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)


def _flatten(images) -> list:
    """Images as a flat list (one image, an ``N×H×W×3`` stack, a list, or a list of per-prompt lists)."""
    if images is None:
        return []
    if isinstance(images, (list, tuple)) or getattr(images, "ndim", 3) == 4:
        return [x for item in images for x in _flatten(item)]
    return [images]


def _videos(videos) -> list:
    """Videos as frame sequences: an ``F×H×W×3`` uint8 array (or tensor), a list of frames, or a list of videos."""
    if videos is None:
        return []
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
        return [_uint8(videos)]
    videos = list(videos)
    if videos and (isinstance(videos[0], (list, tuple)) or getattr(videos[0], "ndim", 3) == 4):
        return [v for video in videos for v in _videos(video)]
    return [videos] if videos else []


def _sampled(video, num_frames: int) -> list:
    """AuroraCap's ``num_frames`` of one video, as ``_frame``s: only those are converted or cropped, so a
    long list of full-resolution frames is never copied whole. Every frame is checked all the same."""
    frames = [_frame(f, convert=False) for f in video]
    if len({_size(f) for f in frames}) > 1:
        raise ValueError(f"a video's frames must share one size, got {sorted({_size(f) for f in frames})}")
    return [_frame(frames[i]) for i in sample_indices(len(frames), num_frames)]


def _frame(image, convert: bool = True):
    """One image or frame as ``clip_crop`` takes it: an ``H×W×3`` uint8 array, or a PIL image in RGB (cropped
    without a full-resolution array; converted only when ``convert``)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image (Pillow imported by its owner)
        return image.convert("RGB") if convert else image
    return _uint8(image)


def _size(frame) -> tuple[int, int]:
    return frame.size if hasattr(frame, "convert") else (frame.shape[1], frame.shape[0])


def _uint8(array) -> np.ndarray:
    array = array.cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if array.dtype != np.uint8 or array.shape[-1] != 3:
        raise ValueError(f"frames must be H×W×3 uint8 RGB, got shape {array.shape} dtype {array.dtype}")
    return array
