"""Checkpoint variants the tests derive from the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def hf_fork_copy(tiny_hf: Path, dst: Path) -> Path:
    """The HF layout as the authors' transformers fork declares it (auroracap.md §3.2): model_type ``aurora``,
    which plain transformers does not know, the fork's architecture, its -200 sentinel and select strategy."""
    shutil.copytree(tiny_hf, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(model_type="aurora", architectures=["AuroraForConditionalGeneration"], image_token_index=-200,
                  vision_feature_select_strategy="full")
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def projector_keys_swapped(tiny_xtuner: Path, dst: Path) -> Path:
    """The xtuner checkpoint with one projector tensor missing (``model.2.bias``, i.e. ``linear_2.bias``) and
    one unexpected (``model.9.weight``): both loaders must name the two."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_xtuner, dst)
    path = str(dst / "projector" / "model.safetensors")
    weights = load_file(path)
    del weights["model.2.bias"]
    weights["model.9.weight"] = weights["model.0.weight"].clone()
    save_file(weights, path)
    return dst
