"""AuroraCap as an SGLang model: vision tower with per-request token merging → projector → SGLang Llama.

Plugs into SGLang through its published seams only: ``pad_input_ids`` (fill each visual span with the item's
pad values), ``get_image_feature`` / ``get_video_feature`` (one tensor of exactly the spans' token count),
``general_mm_embed_routine`` (splice + LLM), ``load_weights`` and ``EntryClass``.

Each multimodal item carries its own ``MediaItem`` (``item.aurora_media``, set by the processor) and with it
its ``token_kept_ratio``, so requests with different ratios share a prefill batch: their frames are grouped
by r inside the vision forward.
"""

from __future__ import annotations

import contextlib
import logging
import os
from array import array
from typing import Iterable

import torch
from torch import nn

from sglang.srt.managers.mm_utils import general_mm_embed_routine, pad_mm_tokens
from sglang.srt.managers.schedule_batch import Modality, MultimodalDataItem, MultimodalInputs
from sglang.srt.model_executor.forward_batch_info import ForwardBatch
from sglang.srt.models.llama import LlamaForCausalLM
from sglang.srt.utils import add_prefix

from aurora_serve.ckpt.layout import iter_safetensors
from aurora_serve.model import stage_metrics
from aurora_serve.model.spec import AuroraOverride, AuroraSpec
from aurora_serve.model.vision import AuroraProjector, AuroraVisionTower, encode_items
from aurora_serve.model.weights import check_keys, copy_param, expected_llm_keys, map_key

logger = logging.getLogger(__name__)

# Bounds the vision tower's activation memory (it lives outside SGLang's KV pool): frames per forward.
MAX_FRAMES_PER_VISION_FORWARD = 32


class AuroraCapForConditionalGeneration(nn.Module):
    def __init__(self, config, quant_config=None, prefix: str = "") -> None:
        super().__init__()
        self.config = config
        self.spec = AuroraSpec.from_hf_config(config)
        text_config = getattr(config, "text_config", None) or config
        self.vision_tower = AuroraVisionTower(self.spec.vision)
        self.projector = AuroraProjector(
            self.spec.vision.hidden_size, self.spec.text_hidden_size, self.spec.projector_hidden_act
        )
        self.language_model = LlamaForCausalLM(
            text_config, quant_config, prefix=add_prefix("language_model", prefix)
        )
        override = AuroraOverride.of(config)
        self.merge_backend = override.runtime.merge_backend if override else "auto"
        self.model_dir = override.model_dir if override else None
        self.layout = override.layout if override else "hf"
        self._timers = {name: stage_metrics.StageTimer(getattr(stage_metrics, name))
                        for name in ("vision", "merge", "prefill")}

    # --- SGLang multimodal seams -------------------------------------------------------------------
    def pad_input_ids(self, input_ids: array, mm_inputs: MultimodalInputs) -> array:
        return pad_mm_tokens(input_ids, mm_inputs)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.language_model.get_input_embeddings()

    def get_video_feature(self, items: list[MultimodalDataItem]) -> torch.Tensor:
        """Items (in request order) → ``[Σ frames·tokens_per_frame(ρ_item), text hidden]``."""
        return self._encode_items(items)

    def get_image_feature(self, items: list[MultimodalDataItem]) -> torch.Tensor:
        return self._encode_items(items)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, forward_batch: ForwardBatch, **kwargs):
        timed = self._timers["prefill"].time(input_ids.device) if forward_batch.forward_mode.is_extend() \
            else contextlib.nullcontext()
        with timed:
            return general_mm_embed_routine(
                input_ids=input_ids,
                forward_batch=forward_batch,
                language_model=self.language_model,
                data_embedding_funcs={Modality.IMAGE: self.get_image_feature, Modality.VIDEO: self.get_video_feature},
                positions=positions,
            )

    # --- vision ---------------------------------------------------------------------------------------
    def _encode_items(self, items: list[MultimodalDataItem]) -> torch.Tensor:
        """Encode every frame of every item, frames grouped by r across items, outputs in item order."""
        device = self.projector.linear_1.weight.device
        merges = self._timers["merge"].spans(device)
        rs = [self.spec.vision.merge_r(item.aurora_media.token_kept_ratio) for item in items]
        with self._timers["vision"].time(device):
            feats = encode_items(self.vision_tower, self.projector, [self._pixels(item) for item in items], rs,
                                 self.merge_backend, MAX_FRAMES_PER_VISION_FORWARD, merges.span)
        merges.done()
        outputs = [f.reshape(-1, f.shape[-1]) for f in feats]
        for item, out in zip(items, outputs):
            expected = sum(end - start + 1 for start, end in item.offsets)
            if out.shape[0] != expected:
                raise RuntimeError(
                    f"vision tower produced {out.shape[0]} tokens for an item whose span holds {expected} "
                    f"(token_kept_ratio={item.aurora_media.token_kept_ratio}); processor and model disagree on the count"
                )
        return torch.cat(outputs)

    def _pixels(self, item: MultimodalDataItem) -> torch.Tensor:
        feature = item.feature
        if isinstance(feature, list):
            feature = torch.cat([f if f.dim() == 4 else f.unsqueeze(0) for f in feature])
        return feature if feature.dim() == 4 else feature.unsqueeze(0)

    # --- weights --------------------------------------------------------------------------------------
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load either layout; raise naming every missing or unexpected key."""
        sources = [("hf" if self.layout == "hf" else "root", weights)]
        if self.layout == "xtuner":
            if not self.model_dir:
                raise ValueError("xtuner layout needs aurora.model_dir in the config override")
            sources += [(sub, iter_safetensors(os.path.join(self.model_dir, sub))) for sub in ("visual_encoder", "projector")]
        own = dict(self.vision_tower.named_parameters(prefix="vision_tower"))
        own.update(self.projector.named_parameters(prefix="projector"))
        llm_expected = expected_llm_keys([n for n, _ in self.language_model.named_parameters()])
        if getattr(self.language_model.config, "tie_word_embeddings", False):
            llm_expected.discard("lm_head.weight")
        loaded: set[str] = set()
        unexpected: list[str] = []

        def llm_weights():  # streamed: a 7B checkpoint is never held twice in memory
            for source, stream in sources:
                for key, tensor in stream:
                    name = map_key(key, source, self.spec.vision.layers_run)
                    if name is None:
                        continue
                    if name.startswith("language_model.") and name[15:] in llm_expected:
                        loaded.add(name)
                        yield name[15:], tensor
                    elif name in own:
                        copy_param(own[name], tensor, key)
                        loaded.add(name)
                    else:
                        unexpected.append(key)

        self.language_model.load_weights(llm_weights())
        expected = set(own) | {"language_model." + k for k in llm_expected}
        check_keys(expected, loaded, unexpected, self.model_dir or "")


EntryClass = [AuroraCapForConditionalGeneration]
