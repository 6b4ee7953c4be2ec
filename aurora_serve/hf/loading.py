"""``AuroraForConditionalGeneration.from_pretrained``: either checkpoint layout, through the project's layout code.

transformers' own loader reads one folder of one key scheme; AuroraCap's xtuner layout spreads the model over
three folders (root LLM, ``visual_encoder/``, ``projector/``) and its HF layout uses LLaVA-HF names. So the
model is built on the meta device (no random initialisation of 7B parameters), materialised on the target
device, and filled tensor by tensor from ``ckpt.layout.iter_safetensors`` with names from
``model.weights.map_key``; every missing or unexpected key is an error naming them (``check_keys``).

Accepted as transformers does: ``dtype`` / ``torch_dtype`` (a dtype, its name, or ``"auto"``: the
checkpoint's LLM dtype), ``device_map`` (one device: ``"cpu"``, ``"cuda:0"``, ``"auto"``; no sharding),
``attn_implementation``, ``config``, ``generation_config``, ``cache_dir`` / ``local_files_only`` (hub ids
via ``huggingface_hub``), and ``low_cpu_mem_usage`` (always true here: tensors are streamed).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import GenerationConfig

from aurora_serve.ckpt.layout import detect_layout, image_token_id, iter_safetensors, resolve_model_dir
from aurora_serve.hf.config import AuroraConfig, config_from_checkpoint
from aurora_serve.model.weights import check_keys, copy_param, map_key

# Passed by transformers' Auto classes or common in user code; meaningless for this loader.
_IGNORED = ("low_cpu_mem_usage", "_from_auto", "trust_remote_code", "adapter_kwargs", "use_safetensors",
            "force_download", "proxies", "code_revision")


def load_pretrained(cls, name_or_path, *, config: AuroraConfig | None = None, dtype=None, torch_dtype=None,
                    device_map=None, attn_implementation: str | None = None, generation_config=None,
                    cache_dir: str | None = None, local_files_only: bool = False, revision: str | None = None,
                    token=None, subfolder: str = "", **kwargs):
    """Build ``cls`` (``AuroraForConditionalGeneration``) from a checkpoint in either layout; eval mode."""
    unknown = sorted(k for k in kwargs if k not in _IGNORED)
    if unknown:
        raise TypeError(f"{cls.__name__}.from_pretrained got unsupported argument(s): {', '.join(unknown)}")
    if subfolder or token is not None or (revision is not None and not Path(str(name_or_path)).is_dir()):
        raise ValueError("subfolder, token and revision are not supported; pass a local directory or a hub id "
                         "that huggingface_hub can resolve (its cache, HF_TOKEN)")
    model_dir = resolve_model_dir(str(name_or_path), cache_dir=cache_dir, offline=local_files_only)
    layout = detect_layout(model_dir)
    if config is None:
        config = config_from_checkpoint(model_dir)
    elif config.image_token_index < 0:  # the fork's sentinel (e.g. a config AutoConfig read)
        config.image_token_index = image_token_id(model_dir, None)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation  # set on the text config too
    dtype = _resolve_dtype(dtype if dtype is not None else torch_dtype, config)
    device = _resolve_device(device_map)
    with torch.device("meta"), default_dtype(dtype):
        model = cls(config)
    model.to_empty(device=device)
    load_weights(model, model_dir, layout)
    _rebuild_rotary(model, device)
    if config.tie_word_embeddings:
        model.language_model.lm_head.weight = model.language_model.model.embed_tokens.weight
    model.name_or_path = str(name_or_path)
    if generation_config is not None:
        model.generation_config = generation_config
    elif (model_dir / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(model_dir))
    return model.eval()


def load_weights(model, model_dir: Path, layout: str) -> None:
    """Fill every parameter of ``model`` from the checkpoint; raise naming missing and unexpected keys."""
    if layout == "xtuner":
        sources = [("root", model_dir), ("visual_encoder", model_dir / "visual_encoder"),
                   ("projector", model_dir / "projector")]
    else:
        sources = [("hf", model_dir)]
    own = dict(model.named_parameters())
    expected = set(own)
    if model.config.tie_word_embeddings:
        expected.discard("language_model.lm_head.weight")  # tied to the embeddings after loading
    loaded: set[str] = set()
    unexpected: list[str] = []
    for source, folder in sources:
        for key, tensor in iter_safetensors(folder):
            name = map_key(key, source, model.vision_spec.layers_run)
            if name is None:
                continue
            if name in own:
                copy_param(own[name], tensor, key)
                loaded.add(name)
            else:
                unexpected.append(key)
    check_keys(expected, loaded, unexpected, str(model_dir))


def _rebuild_rotary(model, device: torch.device) -> None:
    """Non-persistent buffers are not in checkpoints and ``to_empty`` left them uninitialised: rebuild the
    modules that own them (only the LLM's rotary embedding; anything else is an error, not garbage)."""
    for name, module in list(model.named_modules()):
        if not any(True for _ in module.buffers(recurse=False)):
            continue
        if not type(module).__name__.endswith("RotaryEmbedding"):
            raise RuntimeError(f"{name} ({type(module).__name__}) has buffers this loader cannot restore")
        with torch.device(device):
            fresh = type(module)(module.config)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, fresh)


def _resolve_dtype(dtype, config: AuroraConfig) -> torch.dtype:
    if dtype is None or dtype == "auto":
        dtype = config.text_config.dtype or torch.float32
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or 'auto', got {dtype!r}")
    return dtype


def _resolve_device(device_map) -> torch.device:
    if isinstance(device_map, dict):
        raise ValueError("device_map as a dict (sharding) is not supported; give one device")
    if device_map is None or device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() and device_map == "auto" else "cpu")
    return torch.device(device_map if not isinstance(device_map, int) else f"cuda:{device_map}")


@contextmanager
def default_dtype(dtype: torch.dtype):
    """Create tensors in ``dtype`` inside the block (``torch.set_default_dtype``, restored after)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
