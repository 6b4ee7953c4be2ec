"""The one visual-token count: used by the processor (placeholder expansion) and the model (checks).

AuroraCap removes ``r`` tokens in every vision layer it runs, ``r`` derived from the kept ratio ρ with the
upstream expression (Python float64, left to right, truncated toward zero; computed from the *pixel* size):

    r = int(image_size * image_size / patch_size**2 * (1 - ρ) / num_layers)

Features come from layer ``num_layers + feature_layer + 1`` (31 of 32 for ``feature_layer = -2``), so that
many merges happen, each capped at ``(T - 1) // 2``. With CLS dropped at the end:

    tokens_per_frame(ρ) = 729 − 31·r   (378 px, patch 14, 32 layers: the cap never binds)
"""

from __future__ import annotations

import math


def validate_ratio(token_kept_ratio: float) -> float:
    """Return ρ as a float if ``0 < ρ <= 1``, else raise ``ValueError`` (upstream never checked)."""
    rho = float(token_kept_ratio)
    if not math.isfinite(rho) or not 0.0 < rho <= 1.0:
        raise ValueError(f"token_kept_ratio must be in (0, 1], got {token_kept_ratio!r}")
    return rho


def merge_r(token_kept_ratio: float, image_size: int = 378, patch_size: int = 14, num_layers: int = 32) -> int:
    """Tokens merged away per layer for kept ratio ρ (same float expression as upstream)."""
    rho = validate_ratio(token_kept_ratio)
    return max(0, int(image_size * image_size / patch_size**2 * (1 - rho) / num_layers))


def layers_run(num_layers: int = 32, feature_layer: int = -2) -> int:
    """Encoder layers whose output is needed: ``hidden_states[feature_layer]`` of ``num_layers + 1`` states."""
    n = num_layers + 1 + feature_layer if feature_layer < 0 else feature_layer
    if not 0 < n <= num_layers:
        raise ValueError(f"feature_layer {feature_layer} is out of range for {num_layers} layers")
    return n


def tokens_per_frame(
    token_kept_ratio: float,
    image_size: int = 378,
    patch_size: int = 14,
    num_layers: int = 32,
    feature_layer: int = -2,
) -> int:
    """Visual tokens one frame contributes to the LLM prompt (CLS excluded)."""
    r = merge_r(token_kept_ratio, image_size, patch_size, num_layers)
    tokens = (image_size // patch_size) ** 2 + 1  # patches + CLS
    for _ in range(layers_run(num_layers, feature_layer)):
        tokens -= min(r, (tokens - 1) // 2)
    return tokens - 1
