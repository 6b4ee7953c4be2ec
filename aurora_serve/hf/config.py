"""``AuroraConfig``: AuroraCap as a transformers config (``model_type: aurora``, as the authors' fork named it),
and how one is read from either checkpoint layout.

The defaults are the full-size model (auroracap.md §1): DFN5B-CLIP-ViT-H-14-378 (32 layers, features from
layer 31) and Vicuna-7B-v1.5-16k (linear RoPE ×4 on 4096 positions). ``image_token_index`` defaults to the
fork's −200 sentinel, which is no vocabulary id; loading a checkpoint replaces it with the id the
tokenizer offers (``ckpt.layout.image_token_id``, the rule the SGLang model follows too).
``vision_feature_select_strategy`` is kept for the fork's configs but ignored: every frame's CLS is dropped,
as upstream ``inference.py`` does (the fork's ``"full"`` keeps it, §10.1).
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from aurora_serve.ckpt.layout import detect_layout, image_token_id
from aurora_serve.model.spec import VisionConfig


def vit_h14_378() -> dict:
    """DFN5B-CLIP-ViT-H-14-378 as a ``clip_vision_model`` config dict (visual_encoder/config.json, §3.1)."""
    v = VisionConfig()
    return {"model_type": "clip_vision_model", "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
            "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
            "image_size": v.image_size, "patch_size": v.patch_size, "num_channels": v.num_channels,
            "layer_norm_eps": v.layer_norm_eps, "hidden_act": v.hidden_act, "projection_dim": 512}


def vicuna_7b_16k() -> dict:
    """Vicuna-7B-v1.5-16k as a ``llama`` config dict (§2.4)."""
    return {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "hidden_act": "silu",
            "rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False}


class AuroraConfig(PreTrainedConfig):
    model_type = "aurora"
    attribute_map = {"image_token_id": "image_token_index"}
    sub_configs = {"text_config": AutoConfig, "vision_config": AutoConfig}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    image_token_index: int = -200
    projector_hidden_act: str = "gelu"
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "default"  # ignored: CLS is always dropped (module docstring)
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.vision_config = _sub_config(self.vision_config, vit_h14_378(), "clip_vision_model")
        self.text_config = _sub_config(self.text_config, vicuna_7b_16k(), "llama")
        if not self.tie_word_embeddings and self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = True  # older configs keep the flag in the text config only
        super().__post_init__(**kwargs)

    def vision_geometry(self) -> VisionConfig:
        """The vision tower's geometry (what ``AuroraVisionTower`` and the token count read)."""
        return VisionConfig.from_dict(self.vision_config.to_dict(), feature_layer=int(self.vision_feature_layer))


def _sub_config(value, default: dict, model_type: str) -> PreTrainedConfig:
    if isinstance(value, PreTrainedConfig):
        return value
    values = dict(default if value is None else value)
    values.pop("architectures", None)  # the xtuner root config names LlamaForCausalLM; not ours to keep
    values.setdefault("model_type", model_type)
    return CONFIG_MAPPING[values["model_type"]](**values)


def config_from_checkpoint(model_dir: Path, tokenizer=None) -> AuroraConfig:
    """The config of an AuroraCap checkpoint in either layout (``ckpt.layout.detect_layout``), placeholder
    id resolved. ``tokenizer`` (the checkpoint's) saves loading it again when the id comes from it."""
    model_dir = Path(model_dir)
    if detect_layout(model_dir) == "xtuner":
        projector = json.loads((model_dir / "projector" / "config.json").read_text())
        values = {"text_config": json.loads((model_dir / "config.json").read_text()),
                  "vision_config": json.loads((model_dir / "visual_encoder" / "config.json").read_text()),
                  "projector_hidden_act": projector.get("hidden_act", "gelu")}
        token_id = image_token_id(model_dir, None, tokenizer)
    else:
        config = json.loads((model_dir / "config.json").read_text())
        keep = ("text_config", "vision_config", "projector_hidden_act", "vision_feature_layer",
                "vision_feature_select_strategy", "tie_word_embeddings")
        values = {k: config[k] for k in keep if k in config}
        token_id = image_token_id(model_dir, config, tokenizer)
    config = AuroraConfig(**values, image_token_index=token_id)
    config.architectures = ["AuroraForConditionalGeneration"]
    return config
