"""AuroraCap's vision tower: a CLIP ViT with token merging inside every layer, and the projector.

Per layer (pre-LN CLIP; auroracap.md §4.1): ``x = x + attn(ln1(x))`` → merge r tokens (metric = the
attention's keys averaged over heads) → ``x = x + mlp(ln2(x))``. Only the layers whose output is the
feature layer run (31 of 32); CLS is protected by the merge and dropped at the end. Attention is plain
fused softmax attention: upstream's "proportional attention" term adds a per-row constant and cancels.

Module and parameter names follow Hugging Face CLIP (``embeddings.patch_embedding.weight``,
``encoder.layers.{i}.self_attn.k_proj.bias`` …) so checkpoint keys map by prefix alone.
Legend: F frames, T tokens (CLS included), C channels, H heads, D head dim.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F_
from torch import nn

from aurora_serve.kernels.dispatch import merge_step
from aurora_serve.media.preprocess import normalisation_table, normalise
from aurora_serve.model.spec import VisionConfig


def normalise_crops(crops: torch.Tensor) -> torch.Tensor:
    """``[F, S, S, 3]`` uint8 crops → ``[F, 3, S, S]`` float32 CLIP pixel values, on the crops' device.

    The same per-level table as the CPU path (``media.preprocess.normalise``): looking levels up gives the
    same float32 values bit for bit, wherever it runs. On CPU the NumPy lookup is used: it indexes by the uint8
    levels directly, where torch needs an int64 copy of the crops (60 → 11 ms CPU for 8 crops)."""
    if crops.device.type == "cpu":
        return normalise(crops.numpy())
    return lookup_levels(crops)


def lookup_levels(crops: torch.Tensor) -> torch.Tensor:
    """``normalise_crops`` in torch, on any device."""
    table = _device_table(crops.device)
    index = crops.long()
    return torch.stack([table[c][index[..., c]] for c in range(3)], dim=1)


@functools.lru_cache(maxsize=8)
def _device_table(device: torch.device) -> torch.Tensor:
    """The 3 × 256 table on ``device``, copied there once: a copy from pageable host memory per chunk of
    frames would wait for the device's stream each time (as ``kernels.tome`` avoids for its k)."""
    return torch.from_numpy(normalisation_table()).to(device)


class VisionEmbeddings(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        c = cfg.hidden_size
        self.class_embedding = nn.Parameter(torch.zeros(c))
        self.patch_embedding = nn.Conv2d(cfg.num_channels, c, cfg.patch_size, cfg.patch_size, bias=False)
        self.position_embedding = nn.Embedding(cfg.num_patches + 1, c)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels ``[F, 3, S, S]`` → ``[F, T = patches + 1, C]`` (raster order, CLS first)."""
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + self.position_embedding.weight.to(x.dtype)


class VisionAttention(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        c = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.q_proj, self.k_proj = nn.Linear(c, c), nn.Linear(c, c)
        self.v_proj, self.out_proj = nn.Linear(c, c), nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[F, T, C]`` → (attention output ``[F, T, C]``, merge metric ``[F, T, D]``).

        The metric is the key projection (bias included, before any scaling) averaged over heads.
        """
        f, t, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        q = self.q_proj(x).view(f, t, h, d).transpose(1, 2)
        k = self.k_proj(x).view(f, t, h, d)
        v = self.v_proj(x).view(f, t, h, d).transpose(1, 2)
        out = F_.scaled_dot_product_attention(q, k.transpose(1, 2), v)  # scale 1/sqrt(D), as CLIP
        return self.out_proj(out.transpose(1, 2).reshape(f, t, c)), k.mean(dim=2)


class VisionMLP(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu


class VisionEncoderLayer(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = VisionAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = VisionMLP(cfg)

    def forward(
        self, x: torch.Tensor, size: torch.Tensor, r: int, merge_backend: str = "auto",
        merge_span: Callable[[], ContextManager] = contextlib.nullcontext,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[F, T, C]``, size ``[F, T]`` → ``([F, T - k, C], [F, T - k])``, k = min(r, (T - 1) // 2).
        ``merge_span``: a context the merge step runs in (the model times it)."""
        attn, metric = self.self_attn(self.layer_norm1(x))
        x = x + attn
        with merge_span():
            x, size = merge_step(x, size, metric, r, backend=merge_backend)
        return x + self.mlp(self.layer_norm2(x)), size


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(VisionEncoderLayer(cfg) for _ in range(cfg.layers_run))


class AuroraVisionTower(nn.Module):
    """CLIP ViT truncated at the feature layer, merging r tokens per layer; returns patch features."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = VisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = VisionEncoder(cfg)

    def forward(self, pixels: torch.Tensor, r: int, merge_backend: str = "auto",
                merge_span: Callable[[], ContextManager] = contextlib.nullcontext) -> torch.Tensor:
        """pixels ``[F, 3, S, S]`` (all frames share r) → features ``[F, tokens_per_frame, C]``, CLS dropped."""
        x = self.pre_layrnorm(self.embeddings(pixels))
        size = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
        for layer in self.encoder.layers:
            x, size = layer(x, size, r, merge_backend, merge_span)
        return x[:, 1:]


class AuroraProjector(nn.Module):
    """Linear → exact (erf) GELU → Linear, both with bias (auroracap.md §2.3)."""

    def __init__(self, vision_hidden: int, text_hidden: int, act: str = "gelu"):
        super().__init__()
        if act != "gelu":
            raise ValueError(f"projector activation {act!r} is not supported (AuroraCap uses exact gelu)")
        self.linear_1 = nn.Linear(vision_hidden, text_hidden)
        self.linear_2 = nn.Linear(text_hidden, text_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F_.gelu(self.linear_1(x)))


def encode_items(
    tower: AuroraVisionTower,
    projector: AuroraProjector,
    pixels: list[torch.Tensor],
    rs: list[int],
    merge_backend: str = "auto",
    max_frames_per_forward: int = 32,
    merge_span: Callable[[], ContextManager] = contextlib.nullcontext,
) -> list[torch.Tensor]:
    """Projected features of several media items, each with its own r: item i's pixels, ``[F_i, 3, S, S]``
    float or ``[F_i, S, S, 3]`` uint8 crops (normalised here, on the model's device) → ``[F_i,
    tokens_per_frame(r_i), text hidden]``, in item order.

    Frames of every item that share an r run through the tower together (one batch per distinct r, split
    into forwards of at most ``max_frames_per_forward`` frames to bound activation memory).
    """
    if len(pixels) != len(rs):
        raise ValueError(f"{len(pixels)} items but {len(rs)} merge counts")
    param = projector.linear_1.weight

    def values(chunk: torch.Tensor) -> torch.Tensor:
        return (normalise_crops(chunk) if chunk.dtype == torch.uint8 else chunk).to(param.dtype)

    outputs: list[torch.Tensor | None] = [None] * len(pixels)
    for r in sorted(set(rs)):
        idx = [i for i, ri in enumerate(rs) if ri == r]
        batch = torch.cat([pixels[i] for i in idx]).to(param.device)  # uint8 crops cross the bus as uint8
        feats = torch.cat([projector(tower(values(chunk), r, merge_backend, merge_span))
                           for chunk in batch.split(max_frames_per_forward)])
        for i, part in zip(idx, feats.split([pixels[i].shape[0] for i in idx])):
            outputs[i] = part
    return outputs
