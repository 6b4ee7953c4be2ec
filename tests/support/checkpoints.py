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
