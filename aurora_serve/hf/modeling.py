"""``AuroraForConditionalGeneration``: AuroraCap as a transformers ``PreTrainedModel`` with ``GenerationMixin``.

Composition, no copies: the project's vision tower and projector (``aurora_serve.model.vision``, merge step
through ``kernels.dispatch``: Triton on CUDA), transformers' own ``LlamaForCausalLM`` as the LLM, so every
attention implementation transformers offers for Llama works (eager, sdpa, flex, flash, kernels).

ρ is an argument of ``forward`` and ``generate`` (default 0.8, upstream ``inference.py``'s), never module state.
The processor writes one placeholder per frame; the visual span of a frame is ``tokens_per_frame(ρ)`` wide,
so the prompt is widened here, once ρ is known (``spans.widen``):

- ``generate`` widens first, encodes the frames, splices their features into the widened prompt's
  embeddings, and hands ``input_ids`` + ``inputs_embeds`` + the widened mask to ``GenerationMixin``. The
  generation loop then sees an ordinary left-padded prompt of the widened length: decode positions and the
  cache continue from it (the fork counted them from the unexpanded prompt, auroracap.md §10.1), beams and
  ``num_return_sequences`` copy whole rows. The returned sequences carry the caller's prompt, as given,
  before the generated tokens, like every transformers decoder-only model.
- ``forward`` with ``pixel_values`` accepts either one placeholder per frame (widened here, labels too, for
  training; the logits then follow the widened, left-padded sequence) or already widened ids.
Splicing happens only when pixel values are given: the prefill. Decode steps are the LLM's alone.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import GenerationMixin, LlamaForCausalLM, PreTrainedModel

from aurora_serve.hf.config import AuroraConfig
from aurora_serve.hf.spans import narrow, placeholder_mask, positions, span_lengths, widen
from aurora_serve.model.vision import AuroraProjector, AuroraVisionTower, encode_items

DEFAULT_TOKEN_KEPT_RATIO = 0.8  # upstream inference.py's --token_kept_ratio
Ratio = float | Sequence[float]


class AuroraForConditionalGeneration(PreTrainedModel, GenerationMixin):
    config_class = AuroraConfig
    main_input_name = "input_ids"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["LlamaDecoderLayer", "VisionEncoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]

    def __init__(self, config: AuroraConfig):
        super().__init__(config)
        self.vision_spec = config.vision_geometry()
        self.vision_tower = AuroraVisionTower(self.vision_spec)
        self.projector = AuroraProjector(
            self.vision_spec.hidden_size, config.text_config.hidden_size, config.projector_hidden_act
        )
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs) -> "AuroraForConditionalGeneration":
        """Load either checkpoint layout (local directory or hub id); see ``aurora_serve.hf.loading``."""
        from aurora_serve.hf.loading import load_pretrained  # loading imports this module

        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained takes no positional model arguments")
        return load_pretrained(cls, pretrained_model_name_or_path, **kwargs)

    # --- embeddings and heads (the LLM's) ---------------------------------------------------------------
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.model

    # --- media ----------------------------------------------------------------------------------------
    def tokens_per_frame(self, token_kept_ratio: float) -> int:
        """Visual tokens per frame at ρ (the one count, ``model.token_count``)."""
        return self.vision_spec.tokens_per_frame(token_kept_ratio)

    def get_media_features(
        self,
        pixel_values: torch.Tensor,
        token_kept_ratio: Ratio = DEFAULT_TOKEN_KEPT_RATIO,
        frames_per_media: Sequence[int] | torch.Tensor | None = None,
        merge_backend: str = "auto",
    ) -> torch.Tensor:
        """pixel_values ``[F, 3, S, S]`` → projected features ``[Σ tokens_per_frame, text hidden]`` in frame
        order (frames with the same r share a vision forward; CLS dropped per frame)."""
        if isinstance(token_kept_ratio, (int, float)):
            items, ratios = [pixel_values], [float(token_kept_ratio)]
        else:
            counts = _ints(frames_per_media)
            span_lengths(pixel_values.shape[0], token_kept_ratio, counts, self.tokens_per_frame)  # checks
            items, ratios = list(pixel_values.split(counts)), [float(r) for r in token_kept_ratio]
        rs = [self.vision_spec.merge_r(rho) for rho in ratios]
        feats = encode_items(self.vision_tower, self.projector, items, rs, merge_backend)
        return torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])

    def expand_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        total_frames: int,
        token_kept_ratio: Ratio = DEFAULT_TOKEN_KEPT_RATIO,
        frames_per_media: Sequence[int] | torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The widened, left-padded ``(input_ids, attention_mask, labels)`` the LLM sees for these frames at ρ.
        Ids that already hold the widened spans are only re-padded."""
        lengths = span_lengths(total_frames, token_kept_ratio, _ints(frames_per_media), self.tokens_per_frame)
        found = int(placeholder_mask(input_ids, attention_mask, self.config.image_token_id).sum())
        if found == sum(lengths) and found != total_frames:
            lengths = [1] * found  # already widened
        pad = self.config.text_config.pad_token_id
        return widen(input_ids, attention_mask, self.config.image_token_id, lengths, 0 if pad is None else pad, labels)

    def embed_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     features: torch.Tensor) -> torch.Tensor:
        """Embeddings of widened ``input_ids`` ``[B, L']`` with ``features`` ``[N, hidden]`` (from
        ``get_media_features``) at the N placeholder positions, row-major."""
        is_ph = placeholder_mask(input_ids, attention_mask, self.config.image_token_id)
        # The placeholder may lie outside the LLM's vocabulary (an added <image> token): never look it up.
        embeds = self.get_input_embeddings()(input_ids.masked_fill(is_ph, 0))
        if features.shape[0] != int(is_ph.sum()):
            raise ValueError(f"{features.shape[0]} visual features for {int(is_ph.sum())} placeholder positions")
        return embeds.masked_scatter(is_ph.unsqueeze(-1), features.to(embeds.device, embeds.dtype))

    # --- forward and generate -----------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        token_kept_ratio: Ratio = DEFAULT_TOKEN_KEPT_RATIO,
        frames_per_media: torch.Tensor | None = None,
        merge_backend: str = "auto",
        **kwargs,
    ):
        """The LLM's ``CausalLMOutputWithPast``. With ``pixel_values`` (prefill only), the prompt is widened if
        it holds one placeholder per frame (module docstring) and the features are spliced in."""
        if pixel_values is not None:
            if inputs_embeds is not None or input_ids is None:
                raise ValueError("pixel_values need input_ids (with the frame placeholders), not inputs_embeds")
            if past_key_values is not None and past_key_values.get_seq_length() > 0:
                raise ValueError("pixel_values belong to the prefill; the cache already holds tokens")
            frames = pixel_values.shape[0]
            wide, mask, labels = self.expand_inputs(input_ids, attention_mask, frames, token_kept_ratio,
                                                    frames_per_media, labels)
            position_ids = None  # from the widened mask below: the caller's described the ids before widening
            features = self.get_media_features(pixel_values, token_kept_ratio, frames_per_media, merge_backend)
            inputs_embeds = self.embed_inputs(wide, mask, features)
            input_ids, attention_mask = None, mask
        if position_ids is None and isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2:
            length = (inputs_embeds if input_ids is None else input_ids).shape[1]
            position_ids = positions(attention_mask, length)
        return self.language_model(
            input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            position_ids=position_ids, past_key_values=past_key_values, labels=labels, use_cache=use_cache,
            logits_to_keep=logits_to_keep, **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_kept_ratio: Ratio = DEFAULT_TOKEN_KEPT_RATIO,
        frames_per_media: torch.Tensor | None = None,
        merge_backend: str = "auto",
        **kwargs,
    ):
        """``GenerationMixin.generate`` with AuroraCap's media: ``pixel_values`` ``[F, 3, S, S]`` for the F frame
        placeholders of ``input_ids`` (row-major), each frame widened to ``tokens_per_frame(ρ)`` tokens.
        Returns what ``GenerationMixin.generate`` returns, with the prompt as given (module docstring)."""
        if pixel_values is None:
            return super().generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if input_ids is None or kwargs.get("inputs_embeds") is not None:
            raise ValueError("pixel_values need input_ids (with the frame placeholders), not inputs_embeds")
        wide, mask, _ = self.expand_inputs(input_ids, attention_mask, pixel_values.shape[0], token_kept_ratio,
                                           frames_per_media)
        wide, mask = wide.to(self.device), mask.to(self.device)
        features = self.get_media_features(pixel_values, token_kept_ratio, frames_per_media, merge_backend)
        embeds = self.embed_inputs(wide, mask, features)
        out = super().generate(input_ids=wide, attention_mask=mask, inputs_embeds=embeds, **kwargs)
        if isinstance(out, torch.Tensor):
            return narrow(out, input_ids, wide.shape[1])
        out.sequences = narrow(out.sequences, input_ids, wide.shape[1])
        return out


def _ints(values) -> list[int] | None:
    if values is None:
        return None
    return [int(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]
