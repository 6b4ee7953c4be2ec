"""Checkpoint key mapping for both AuroraCap layouts, and the missing/unexpected-key check (no SGLang).

Model parameter names (our SGLang class): ``language_model.{model.*, lm_head.weight}``,
``vision_tower.{embeddings.*, pre_layrnorm.*, encoder.layers.{i}.*}``, ``projector.linear_{1,2}.*``.

| layout | checkpoint key | ours |
|---|---|---|
| xtuner root | ``model.*``, ``lm_head.weight`` | ``language_model.…`` |
| xtuner ``visual_encoder/`` | ``vision_model.*`` | ``vision_tower.*`` |
| xtuner ``projector/`` | ``model.0.*`` / ``model.2.*`` | ``projector.linear_1.*`` / ``linear_2.*`` |
| HF (LLaVA-HF, transformers 4) | ``language_model.model.*``, ``language_model.lm_head.*``, ``vision_tower.vision_model.*``, ``multi_modal_projector.linear_{1,2}.*`` | same as above |
| HF (transformers 5 LLaVA) | ``model.language_model.*``, ``lm_head.*``, ``model.vision_tower.vision_model.*``, ``model.multi_modal_projector.*`` | same as above |
| HF (``aurora_serve.hf`` ``save_pretrained``) | ours, as in the first line of this table | unchanged |

Keys that are known and deliberately unused: the ``pos_emb`` alias, ``post_layernorm``, vision layers past
the feature layer, rotary caches.
"""

from __future__ import annotations

import re

import torch

from aurora_serve.errors import ModelLoadError

_LAYER = re.compile(r"encoder\.layers\.(\d+)\.")
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "rotary_emb.cos_cached", "rotary_emb.sin_cached")


def map_key(key: str, source: str, vision_layers_run: int) -> str | None:
    """Our parameter name for checkpoint ``key`` from ``source`` ∈ {"root", "visual_encoder", "projector",
    "hf"}; ``None`` when the key is known but unused. Unknown keys map to a name the caller will not find."""
    if key.endswith(_IGNORED_SUFFIXES):
        return None
    if source == "hf":
        for old, new in (
            ("model.language_model.", "language_model.model."),
            ("language_model.", "language_model."),
            ("model.vision_tower.vision_model.", "vision_tower."),
            ("vision_tower.vision_model.", "vision_tower."),
            ("model.multi_modal_projector.", "projector."),
            ("multi_modal_projector.", "projector."),
            # our own names (what aurora_serve.hf's save_pretrained writes)
            ("vision_tower.", "vision_tower."),
            ("projector.", "projector."),
        ):
            if key.startswith(old):
                key, source = new + key[len(old):], "mapped"
                break
        else:
            if key == "lm_head.weight":
                return "language_model.lm_head.weight"
            return "<unexpected>." + key
    elif source == "root":
        key = "language_model." + key
    elif source == "visual_encoder":
        if key == "pos_emb":
            return None
        if not key.startswith("vision_model."):
            return "<unexpected>." + key
        key = "vision_tower." + key[len("vision_model."):]
    elif source == "projector":
        key = {"model.0.": "projector.linear_1.", "model.2.": "projector.linear_2."}.get(key[:8], "<unexpected>.") + key[8:]
    if key.startswith("vision_tower."):
        if key.startswith("vision_tower.post_layernorm."):
            return None
        m = _LAYER.search(key)
        if m and int(m.group(1)) >= vision_layers_run:
            return None
    return key


def expected_llm_keys(param_names: list[str]) -> set[str]:
    """Checkpoint-style LLM names implied by SGLang's fused Llama parameters (qkv and gate_up fused)."""
    out: set[str] = set()
    for name in param_names:
        if ".qkv_proj." in name:
            out.update(name.replace(".qkv_proj.", f".{p}_proj.") for p in "qkv")
        elif ".gate_up_proj." in name:
            out.update(name.replace(".gate_up_proj.", f".{p}_proj.") for p in ("gate", "up"))
        else:
            out.add(name)
    return out


def check_keys(expected: set[str], loaded: set[str], unexpected: list[str], where: str) -> None:
    """Raise :class:`ModelLoadError` naming missing and unexpected keys (first 20 of each)."""
    missing = sorted(expected - loaded)
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {', '.join(missing[:20])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {', '.join(sorted(unexpected)[:20])}")
    raise ModelLoadError(f"checkpoint {where} does not match the AuroraCap model — " + "; ".join(parts))


def copy_param(param: torch.Tensor, tensor: torch.Tensor, key: str) -> None:
    """Copy checkpoint ``tensor`` (named ``key``) into ``param``, cast to its dtype; a shape mismatch is an error."""
    if tuple(param.shape) != tuple(tensor.shape):
        raise ValueError(f"checkpoint tensor {key} has shape {tuple(tensor.shape)}, model expects {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(tensor.to(param.dtype))
