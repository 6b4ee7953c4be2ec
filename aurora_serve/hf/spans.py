"""Placeholder spans for the transformers API: one placeholder per frame in, one span per frame out.

``AuroraProcessor`` writes one placeholder per frame (the visual span's width depends on ρ, which the README
passes to ``generate``, not to the processor). ``widen`` turns each into its frame's span of
``tokens_per_frame(ρ)`` placeholders before the LLM sees the prompt, and ``narrow`` puts the caller's own
prompt back in front of the generated tokens. Legend: B rows, L prompt length as given, L' after widening.

Rows are re-padded on the **left** after widening, whatever padding they came with: the rows of a batch
widen by different amounts, and left padding keeps every row's last prompt token in the last column, where
generation continues. Placeholders are found among real tokens only (``attention_mask == 1``): the pad id
may equal the placeholder id (Vicuna pads with ``<unk>``, the xtuner layout's placeholder).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

IGNORE_INDEX = -100  # labels transformers' loss skips


def span_lengths(
    total_frames: int,
    token_kept_ratio: float | Sequence[float],
    frames_per_media: Sequence[int] | None,
    tokens_per_frame: Callable[[float], int],
) -> list[int]:
    """Tokens per frame for every frame, in placeholder order.

    ``token_kept_ratio`` is one ρ for every frame, or one per media item in prompt order (then
    ``frames_per_media`` says how many frames each item has; the processor returns it).
    """
    if isinstance(token_kept_ratio, (int, float)):
        return [tokens_per_frame(float(token_kept_ratio))] * total_frames
    ratios = [float(r) for r in token_kept_ratio]
    if frames_per_media is None:
        raise ValueError("a token_kept_ratio per media item needs frames_per_media (the processor returns it)")
    frames = [int(f) for f in frames_per_media]
    if len(ratios) != len(frames):
        raise ValueError(f"{len(ratios)} token_kept_ratio values for {len(frames)} media items")
    if sum(frames) != total_frames:
        raise ValueError(f"frames_per_media sums to {sum(frames)} but pixel_values holds {total_frames} frames")
    return [tokens_per_frame(rho) for rho, f in zip(ratios, frames) for _ in range(f)]


def placeholder_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, placeholder_id: int) -> torch.Tensor:
    """``[B, L]`` bool: placeholder positions among real tokens."""
    mask = input_ids == placeholder_id
    return mask if attention_mask is None else mask & attention_mask.bool()


def widen(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    placeholder_id: int,
    lengths: Sequence[int],
    pad_id: int,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Repeat the k-th placeholder (row-major over real tokens) ``lengths[k]`` times; re-pad on the left.

    Args:
        input_ids ``[B, L]``, attention_mask ``[B, L]`` (None: no padding), labels ``[B, L]`` or None.
        lengths: one span length per placeholder; there must be exactly as many placeholders.

    Returns:
        ``(input_ids [B, L'], attention_mask [B, L'], labels [B, L'] or None)``; a span's labels and the
        padding's are ``IGNORE_INDEX``.
    """
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    is_ph = placeholder_mask(input_ids, real, placeholder_id)
    found = int(is_ph.sum())
    if found != len(lengths):
        raise ValueError(f"the prompts hold {found} frame placeholders (id {placeholder_id}) but {len(lengths)} "
                         "frames were given; write one placeholder per frame (the processor does)")
    spans = torch.ones_like(input_ids)
    spans[is_ph] = torch.as_tensor(list(lengths), dtype=spans.dtype, device=spans.device)
    rows = [input_ids[b][real[b]].repeat_interleave(spans[b][real[b]]) for b in range(input_ids.shape[0])]
    label_rows = None
    if labels is not None:
        masked = labels.masked_fill(is_ph, IGNORE_INDEX)
        label_rows = [masked[b][real[b]].repeat_interleave(spans[b][real[b]]) for b in range(input_ids.shape[0])]
    ids, mask = pad_rows(rows, pad_id)
    return ids, mask, None if label_rows is None else pad_rows(label_rows, IGNORE_INDEX)[0]


def pad_rows(rows: list[torch.Tensor], value: int, side: str = "left") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of different lengths as one ``[B, L]`` tensor padded with ``value`` on ``side``, and its mask."""
    width = max(len(r) for r in rows)
    out = rows[0].new_full((len(rows), width), value)
    mask = rows[0].new_zeros((len(rows), width))
    for b, row in enumerate(rows):
        cols = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        out[b, cols] = row
        mask[b, cols] = 1
    return out, mask


def positions(attention_mask: torch.Tensor, length: int) -> torch.Tensor:
    """Position ids of the last ``length`` columns of a ``[B, L]`` mask: each row counts its real tokens from
    0, so a left-padded row sees the positions it would see alone (pads get 0; they are masked anyway)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp(min=0)[:, -length:]


def narrow(sequences: torch.Tensor, prompt_ids: torch.Tensor, wide_length: int) -> torch.Tensor:
    """``[prompt as given ; generated tokens]`` from ``[widened prompt ; generated tokens]``; rows of
    ``sequences`` may be ``k`` copies of each prompt row (``num_return_sequences``, beams)."""
    copies = sequences.shape[0] // prompt_ids.shape[0]
    prompt = prompt_ids.to(sequences.device).repeat_interleave(copies, dim=0)
    return torch.cat([prompt, sequences[:, wide_length:]], dim=1)
