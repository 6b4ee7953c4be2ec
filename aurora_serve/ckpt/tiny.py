"""``aurora-serve make-tiny``: a random AuroraCap with the real vision geometry, for tests and the default.

Vision: 378 px, patch 14, 32 layers (so token counts are the real ones) at a small width. LLM: a tiny
Llama. Tokenizer: a BPE trained here on a generated corpus (nothing downloaded). Deterministic by seed.
Weights are drawn with unit-scale variance (not the usual 0.02) so logits have clear margins and greedy
decoding does not hinge on rounding noise between implementations.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from aurora_serve.ckpt.layout import write_hf_from_xtuner
from aurora_serve.model.prompt import CHAT_TEMPLATE

WORDS = (
    "a the man woman dog cat person video image frame camera scene shows is are walking running sitting "
    "standing street room table car tree sky water light dark red blue green white black small large "
    "left right front back slowly quickly then while and with in on at of to from describe detail "
    "background foreground moves turns holds looks people two three children ball grass road building"
).split()


def _corpus(rng: random.Random, lines: int = 3000) -> list[str]:
    text = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))) + rng.choice(".,!?") for _ in range(lines)]
    return text + ["USER: <image>\nDescribe the video in detail. ASSISTANT:", "0123456789 ()[]{}:;'\"-_/\\@#$%^&*+=<>|~`"]


def make_tokenizer(out: Path, seed: int, vocab_size: int) -> int:
    """Train and save a Llama-style (Metaspace, BOS-prefixed) BPE tokenizer; return its vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(_corpus(random.Random(seed)), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>",
        model_max_length=16384, padding_side="right",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return tok.get_vocab_size()


FINGERPRINT_FILE = ".aurora-tiny-fingerprint"
DEFAULT_DIR = Path.home() / ".cache" / "aurora-serve" / "tiny-auroracap"


def cached_tiny(directory: str | Path | None = None) -> Path:
    """The embedded tiny model (xtuner layout) in ``directory`` (default ``DEFAULT_DIR``), built on first use
    and rebuilt when the generator changes, so a cached tiny model never outlives the code that made it."""
    tiny = Path(directory) if directory is not None else DEFAULT_DIR
    stamp = tiny / FINGERPRINT_FILE
    if not stamp.is_file() or stamp.read_text() != tiny_fingerprint():
        shutil.rmtree(tiny, ignore_errors=True)
        make_tiny(tiny, "xtuner")
    return tiny


def tiny_fingerprint() -> str:
    """Identifies the generator (this file + the chat template): a cached tiny model is rebuilt when it changes."""
    import hashlib

    return hashlib.sha256(Path(__file__).read_bytes() + CHAT_TEMPLATE.encode()).hexdigest()[:16]


def _normal(gen: torch.Generator, *shape: int, std: float) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * std


def _linear(gen, prefix: str, n_out: int, n_in: int, bias: bool = True) -> dict[str, torch.Tensor]:
    out = {f"{prefix}.weight": _normal(gen, n_out, n_in, std=1 / math.sqrt(n_in))}
    if bias:
        out[f"{prefix}.bias"] = _normal(gen, n_out, std=0.02)
    return out


def _norm(gen, prefix: str, dim: int, bias: bool = True) -> dict[str, torch.Tensor]:
    out = {f"{prefix}.weight": 1 + _normal(gen, dim, std=0.1)}
    if bias:
        out[f"{prefix}.bias"] = _normal(gen, dim, std=0.02)
    return out


def vision_weights(gen, cfg: dict) -> dict[str, torch.Tensor]:
    c, m, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"]
    n = (cfg["image_size"] // p) ** 2 + 1
    w = {
        "vision_model.embeddings.class_embedding": _normal(gen, c, std=1.0),
        "vision_model.embeddings.patch_embedding.weight": _normal(gen, c, 3, p, p, std=1 / math.sqrt(3 * p * p)),
        "vision_model.embeddings.position_embedding.weight": _normal(gen, n, c, std=0.5),
        **_norm(gen, "vision_model.pre_layrnorm", c),
        **_norm(gen, "vision_model.post_layernorm", c),
    }
    for i in range(cfg["num_hidden_layers"]):
        pre = f"vision_model.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w.update(_linear(gen, f"{pre}.self_attn.{proj}", c, c))
        w.update(_norm(gen, f"{pre}.layer_norm1", c) | _norm(gen, f"{pre}.layer_norm2", c))
        w.update(_linear(gen, f"{pre}.mlp.fc1", m, c) | _linear(gen, f"{pre}.mlp.fc2", c, m))
    w["pos_emb"] = w["vision_model.embeddings.position_embedding.weight"].clone()  # upstream's alias key
    return w


def llm_weights(gen, cfg: dict) -> dict[str, torch.Tensor]:
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    w = {"model.embed_tokens.weight": _normal(gen, v, h, std=1.0), "lm_head.weight": _normal(gen, v, h, std=1 / math.sqrt(h))}
    w.update(_norm(gen, "model.norm", h, bias=False))
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}"
        for proj, n_out in (("q_proj", h), ("k_proj", kv), ("v_proj", kv), ("o_proj", h)):
            w.update(_linear(gen, f"{pre}.self_attn.{proj}", n_out, h, bias=False))
        for proj, n_out, n_in in (("gate_proj", f, h), ("up_proj", f, h), ("down_proj", h, f)):
            w.update(_linear(gen, f"{pre}.mlp.{proj}", n_out, n_in, bias=False))
        w.update(_norm(gen, f"{pre}.input_layernorm", h, bias=False) | _norm(gen, f"{pre}.post_attention_layernorm", h, bias=False))
    return w


def make_tiny(out: str | Path, layout: str = "xtuner", seed: int = 0, vision_width: int = 64) -> Path:
    """Write a tiny AuroraCap to ``out`` in the ``xtuner`` or ``hf`` layout and return the path."""
    out = Path(out)
    if layout not in ("xtuner", "hf"):
        raise ValueError(f"layout must be 'xtuner' or 'hf', got {layout!r}")
    xt = out if layout == "xtuner" else out.with_name(out.name + ".xtuner-tmp")
    xt.mkdir(parents=True, exist_ok=True)
    vocab = make_tokenizer(xt, seed, vocab_size=1024)
    gen = torch.Generator().manual_seed(seed)
    llm = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": 64,
        "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 16384, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    vision = {
        "model_type": "clip_vision_model", "hidden_size": vision_width, "intermediate_size": 2 * vision_width,
        "num_hidden_layers": 32, "num_attention_heads": 4, "image_size": 378, "patch_size": 14,
        "num_channels": 3, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu", "projection_dim": 32,
        "torch_dtype": "float32",
    }
    projector = {"architectures": ["ProjectorModel"], "model_type": "projector", "visual_hidden_size": vision_width,
                 "llm_hidden_size": llm["hidden_size"], "depth": 2, "hidden_act": "gelu", "bias": True}
    _write(xt, "config.json", llm, llm_weights(gen, llm))
    _write(xt / "visual_encoder", "config.json", vision, vision_weights(gen, vision))
    proj_w = _linear(gen, "model.0", llm["hidden_size"], vision_width) | _linear(gen, "model.2", llm["hidden_size"], llm["hidden_size"])
    _write(xt / "projector", "config.json", projector, proj_w)
    (xt / "visual_encoder" / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2))
    (xt / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}))
    if layout == "hf":
        write_hf_from_xtuner(xt, out)
        shutil.rmtree(xt)
    (out / FINGERPRINT_FILE).write_text(tiny_fingerprint())
    return out


PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 378},
    "do_center_crop": True, "crop_size": {"height": 378, "width": 378}, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True, "do_convert_rgb": True, "resample": 3,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}


def _write(folder: Path, config_name: str, config: dict, weights: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / config_name).write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
