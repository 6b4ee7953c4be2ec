"""What the model and its processor know about AuroraCap besides the LLM, read from the config SGLang hands
them: the vision/projector geometry (``AuroraSpec``) and aurora-serve's override (``AuroraOverride``). No SGLang.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aurora_serve.config import ModelRuntime
from aurora_serve.model.token_count import layers_run, merge_r, tokens_per_frame


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

    def merge_r(self, token_kept_ratio: float) -> int:
        return merge_r(token_kept_ratio, self.image_size, self.patch_size, self.num_hidden_layers)

    def tokens_per_frame(self, token_kept_ratio: float) -> int:
        return tokens_per_frame(
            token_kept_ratio, self.image_size, self.patch_size, self.num_hidden_layers, self.feature_layer
        )


@dataclass(frozen=True)
class AuroraOverride:
    """The ``aurora`` dict aurora-serve puts into SGLang's ``json_model_override_args`` (``ckpt.layout.
    sglang_overrides``), typed. Built from that dict; an unknown key is an error, never silently ignored."""

    layout: str  # "xtuner" | "hf"
    model_dir: str
    runtime: ModelRuntime = ModelRuntime()
    image_token_id: int | None = None  # the visual placeholder id when the config names none usable
    vision_config: dict[str, Any] | None = None  # xtuner layout: visual_encoder/config.json
    projector_hidden_act: str = "gelu"  # xtuner layout (the HF config carries its own)
    feature_layer: int = -2  # xtuner layout

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AuroraOverride":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown key(s) in the aurora config override: {', '.join(unknown)}")
        runtime = values.get("runtime") or {}
        runtime = runtime if isinstance(runtime, ModelRuntime) else ModelRuntime.from_dict(runtime)
        return cls(**{**values, "runtime": runtime})

    @classmethod
    def of(cls, config: Any) -> "AuroraOverride | None":
        """The override of an HF config object (SGLang's), or None when it carries none."""
        values = getattr(config, "aurora", None)
        return None if values is None else cls.from_dict(dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AuroraSpec:
    """Everything about AuroraCap that is not the LLM: geometry, projector, placeholder id."""

    vision: VisionConfig
    text_hidden_size: int
    image_token_id: int  # id whose span the processor expands; only its count matters after padding
    projector_hidden_act: str = "gelu"

    @classmethod
    def from_hf_config(cls, config: Any) -> "AuroraSpec":
        """From the config SGLang hands the model and processor.

        HF/LLaVA layout: ``vision_config`` / ``text_config`` sub-configs and ``image_token_index``.
        xtuner layout: a LlamaConfig whose ``aurora`` override carries the vision config and the placeholder id.
        """
        override = AuroraOverride.of(config)
        vision = getattr(config, "vision_config", None)
        if vision is not None:
            vdict = vision.to_dict() if hasattr(vision, "to_dict") else dict(vision)
            text = getattr(config, "text_config", None) or config
            image_token_id = getattr(config, "image_token_index", None)
            if override is not None and override.image_token_id is not None:
                image_token_id = override.image_token_id
            act = getattr(config, "projector_hidden_act", "gelu")
            feature_layer = getattr(config, "vision_feature_layer", -2)
        elif override is not None and override.vision_config is not None:
            vdict, text, image_token_id = override.vision_config, config, override.image_token_id
            act, feature_layer = override.projector_hidden_act, override.feature_layer
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
        )
