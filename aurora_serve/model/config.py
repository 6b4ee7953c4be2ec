"""AuroraCap's vision/projector geometry, read from either checkpoint layout's config (no SGLang here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aurora_serve.model.token_count import layers_run, tokens_per_frame


@dataclass(frozen=True)
class VisionConfig:
    """CLIP ViT geometry. Defaults are DFN5B-CLIP-ViT-H-14-378 (auroracap.md §2.2)."""

    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    image_size: int = 378
    patch_size: int = 14
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"
    feature_layer: int = -2  # hidden_states[-2]: output of layer 31 of 32

    @classmethod
    def from_dict(cls, d: dict[str, Any], feature_layer: int = -2) -> "VisionConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs.setdefault("feature_layer", feature_layer)
        if kwargs.get("hidden_act", "quick_gelu") != "quick_gelu":
            raise ValueError(f"vision hidden_act {kwargs['hidden_act']!r} is not supported (quick_gelu only)")
        return cls(**kwargs)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def layers_run(self) -> int:
        return layers_run(self.num_hidden_layers, self.feature_layer)

    def tokens_per_frame(self, token_kept_ratio: float) -> int:
        return tokens_per_frame(
            token_kept_ratio, self.image_size, self.patch_size, self.num_hidden_layers, self.feature_layer
        )


@dataclass(frozen=True)
class AuroraSpec:
    """Everything about AuroraCap that is not the LLM: geometry, projector, placeholder id, defaults."""

    vision: VisionConfig
    text_hidden_size: int
    image_token_id: int  # id whose span the processor expands; only its count matters after padding
    projector_hidden_act: str = "gelu"
    default_token_kept_ratio: float = 0.8  # upstream inference.py default
    default_num_frames: int = 8

    @classmethod
    def from_hf_config(cls, config: Any) -> "AuroraSpec":
        """From the config SGLang hands the model and processor.

        HF/LLaVA layout: ``vision_config`` / ``text_config`` sub-configs and ``image_token_index``.
        xtuner layout: a LlamaConfig whose ``aurora`` dict (injected by aurora-serve through SGLang's
        ``json_model_override_args``) carries the vision config and the placeholder id.
        """
        extra = dict(getattr(config, "aurora", None) or {})
        vision = getattr(config, "vision_config", None)
        if vision is not None:
            vdict = vision.to_dict() if hasattr(vision, "to_dict") else dict(vision)
            text = getattr(config, "text_config", None) or config
            image_token_id = extra.get("image_token_id", getattr(config, "image_token_index", None))
            act = getattr(config, "projector_hidden_act", "gelu")
            feature_layer = getattr(config, "vision_feature_layer", -2)
        elif "vision_config" in extra:
            vdict, text = extra["vision_config"], config
            image_token_id = extra.get("image_token_id")
            act, feature_layer = extra.get("projector_hidden_act", "gelu"), extra.get("feature_layer", -2)
        else:
            raise ValueError(
                "config has neither vision_config (HF layout) nor an 'aurora' override (xtuner layout); "
                "load checkpoints through aurora-serve, which detects the layout"
            )
        if image_token_id is None or int(image_token_id) < 0:
            raise ValueError(f"image_token_id must be a real vocabulary id, got {image_token_id!r}")
        return cls(
            vision=VisionConfig.from_dict(vdict, feature_layer=int(feature_layer)),
            text_hidden_size=int(text.hidden_size),
            image_token_id=int(image_token_id),
            projector_hidden_act=act,
            default_token_kept_ratio=float(extra.get("default_token_kept_ratio", 0.8)),
            default_num_frames=int(extra.get("default_num_frames", 8)),
        )
