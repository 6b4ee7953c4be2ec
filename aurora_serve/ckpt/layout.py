"""The two AuroraCap checkpoint layouts: detect, resolve (local dir or hub id), convert, and describe
to SGLang (the ``json_model_override_args`` that names our architecture and carries vision geometry).

xtuner (``wchai/AuroraCap-7B-VID-xtuner``): root = Llama LLM + tokenizer; ``visual_encoder/`` = CLIP
vision config + ``vision_model.*`` weights; ``projector/`` = ``model.0`` / ``model.2``.
HF (what ``convert --to hf`` writes; LLaVA-HF names): one ``config.json`` with ``model_type: llava``,
``vision_config``, ``text_config``, ``image_token_index`` (an ``<image>`` token added to the tokenizer;
the LLM vocabulary is left unpadded so both layouts compute the same logits).
The authors' HF repos (for their transformers fork) declare ``model_type: aurora``, which transformers does
not know, and may keep the fork's sentinel ``image_token_index`` (-200); the weight names are LLaVA-HF's. SGLang
gets such a checkpoint through :func:`llava_view` (the same files, ``config.json`` saying ``llava``), and the
placeholder id then comes from the tokenizer. The fork's ``vision_feature_select_strategy: full`` (keep CLS)
is ignored on purpose: AuroraCap's reference drops every frame's CLS (auroracap.md §10.1).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from typing import Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aurora_serve.config import ModelRuntime
from aurora_serve.errors import ModelLoadError
from aurora_serve.model.spec import AuroraOverride

ARCH = "AuroraCapForConditionalGeneration"
IMAGE_TOKEN = "<image>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


def resolve_model_dir(model: str, cache_dir: str | None = None, offline: bool = False) -> Path:
    """A local directory as is; otherwise a Hugging Face hub id through ``huggingface_hub`` (its cache)."""
    if os.path.isdir(model):
        return Path(model).resolve()
    if model.startswith((".", "/")) or model.count("/") != 1:
        raise ModelLoadError(f"model path {model!r} is neither a local directory nor a hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, cache_dir=cache_dir, local_files_only=offline))
    except Exception as e:  # hub errors come in many classes; all mean "cannot get this model"
        raise ModelLoadError(f"could not resolve hub model {model!r}: {e}") from e


def detect_layout(model_dir: Path) -> str:
    """'xtuner' or 'hf', or a :class:`ModelLoadError` saying what is missing."""
    if (model_dir / "visual_encoder" / "config.json").is_file() and (model_dir / "projector").is_dir():
        return "xtuner"
    cfg_path = model_dir / "config.json"
    if cfg_path.is_file() and "vision_config" in json.loads(cfg_path.read_text()):
        return "hf"
    raise ModelLoadError(
        f"{model_dir} is not an AuroraCap checkpoint: expected visual_encoder/ and projector/ (xtuner layout) "
        "or a config.json with vision_config (HF layout)"
    )


def placeholder_id(tokenizer) -> int:
    """The id that fills visual spans: ``<image>`` when the tokenizer has it, else its unk id."""
    tid = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if tid is None or tid == tokenizer.unk_token_id or tid < 0:
        tid = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
    if tid is None:
        raise ModelLoadError("tokenizer has neither <image> nor an unk/pad token to use as the visual placeholder")
    return int(tid)


def sglang_overrides(model_dir: Path, layout: str, runtime: ModelRuntime = ModelRuntime()) -> dict:
    """The config override SGLang applies: our architecture plus an ``aurora`` dict (``AuroraOverride``)."""
    aurora: dict = {"layout": layout, "model_dir": str(model_dir), "runtime": runtime}
    if layout == "xtuner":
        aurora["vision_config"] = json.loads((model_dir / "visual_encoder" / "config.json").read_text())
        aurora["image_token_id"] = image_token_id(model_dir, None)
    else:
        config = json.loads((model_dir / "config.json").read_text())
        aurora = {**config.get("aurora", {}), **aurora}
        if "image_token_id" not in aurora and config_token_id(config) is None:
            aurora["image_token_id"] = image_token_id(model_dir, config)
    return {"architectures": [ARCH], "aurora": AuroraOverride.from_dict(aurora).to_dict()}


def config_token_id(config: dict | None) -> int | None:
    """An HF config's ``image_token_index`` when it is a vocabulary id; None for the fork's -200 sentinel, a
    missing index, or no HF config at all (the xtuner layout's Llama config names no placeholder)."""
    index = (config or {}).get("image_token_index")
    return index if isinstance(index, int) and index >= 0 else None


def image_token_id(model_dir: Path, config: dict | None, tokenizer=None) -> int:
    """The visual placeholder id of a checkpoint: the HF config's index when usable (``config_token_id``),
    else the tokenizer's (``placeholder_id``; ``tokenizer`` or the checkpoint's). One rule for the SGLang
    model and the transformers API (``aurora_serve.hf``)."""
    token_id = config_token_id(config)
    if token_id is not None:
        return token_id
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return placeholder_id(tokenizer)


def llava_view(model_dir: Path) -> Path | None:
    """For an HF-layout checkpoint whose ``model_type`` is not ``llava`` (the fork's ``aurora``): a temporary
    directory of links to its files with a ``config.json`` that says ``llava``, because SGLang reads configs
    through ``AutoConfig``. None when the checkpoint needs no view. The caller removes the directory."""
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") == "llava":
        return None
    view = Path(tempfile.mkdtemp(prefix="aurora-llava-view-"))
    for item in model_dir.iterdir():
        if item.name != "config.json":
            (view / item.name).symlink_to(item.resolve())
    config["model_type"] = "llava"
    (view / "config.json").write_text(json.dumps(config, indent=2))
    return view


def iter_safetensors(folder: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """``(key, tensor)`` of every ``*.safetensors`` file in ``folder``, streamed one tensor at a time."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {folder}")
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                yield key, f.get_tensor(key)


def _load_all(folder: Path) -> dict[str, torch.Tensor]:
    return dict(iter_safetensors(folder))


def write_hf_from_xtuner(src: Path, dst: Path) -> None:
    """Convert an xtuner-layout checkpoint to the HF layout (key map: auroracap.md §3.3)."""
    from transformers import AutoTokenizer

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    text_cfg = json.loads((src / "config.json").read_text())
    vision_cfg = json.loads((src / "visual_encoder" / "config.json").read_text())
    weights = {f"language_model.{k}": v for k, v in _load_all(src).items() if not k.endswith("inv_freq")}
    weights.update({f"vision_tower.{k}": v for k, v in _load_all(src / "visual_encoder").items() if k != "pos_emb"})
    for k, v in _load_all(src / "projector").items():
        weights[k.replace("model.0.", "multi_modal_projector.linear_1.").replace("model.2.", "multi_modal_projector.linear_2.")] = v
    tok = AutoTokenizer.from_pretrained(str(src))
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tok.save_pretrained(str(dst))
    config = {
        "architectures": [ARCH], "model_type": "llava", "text_config": text_cfg, "vision_config": vision_cfg,
        "image_token_index": tok.convert_tokens_to_ids(IMAGE_TOKEN), "projector_hidden_act": "gelu",
        "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "tie_word_embeddings": False,
        "torch_dtype": text_cfg.get("torch_dtype", "float16"),
    }
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for extra in ("generation_config.json",):
        if (src / extra).is_file():
            shutil.copy(src / extra, dst / extra)
    if (src / "visual_encoder" / "preprocessor_config.json").is_file():
        shutil.copy(src / "visual_encoder" / "preprocessor_config.json", dst / "preprocessor_config.json")


def write_xtuner_from_hf(src: Path, dst: Path) -> None:
    """Convert an HF-layout checkpoint back to the xtuner layout (tokenizer copied as is)."""
    src, dst = Path(src), Path(dst)
    config = json.loads((src / "config.json").read_text())
    llm, vision, proj = {}, {}, {}
    for k, v in _load_all(src).items():
        if k.startswith("language_model."):
            llm[k[len("language_model."):]] = v
        elif k.startswith("vision_tower."):
            vision[k[len("vision_tower."):]] = v
        elif k.startswith("multi_modal_projector."):
            proj[k.replace("multi_modal_projector.linear_1.", "model.0.").replace("multi_modal_projector.linear_2.", "model.2.")] = v
        else:
            raise ModelLoadError(f"unexpected key {k} in {src}")
    for folder, cfg, w in (
        (dst, config["text_config"], llm),
        (dst / "visual_encoder", config["vision_config"], vision),
        (dst / "projector", _projector_config(config), proj),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(cfg, indent=2))
        save_file({k: v.contiguous() for k, v in w.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    if (src / "preprocessor_config.json").is_file():
        shutil.copy(src / "preprocessor_config.json", dst / "visual_encoder" / "preprocessor_config.json")


def _projector_config(config: dict) -> dict:
    return {"architectures": ["ProjectorModel"], "model_type": "projector",
            "visual_hidden_size": config["vision_config"]["hidden_size"],
            "llm_hidden_size": config["text_config"]["hidden_size"], "depth": 2,
            "hidden_act": config.get("projector_hidden_act", "gelu"), "bias": True}
