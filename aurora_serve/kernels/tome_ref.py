"""Token merging (ToMe bipartite soft matching, size-weighted) — the plain PyTorch reference.

This is AuroraCap's merge step (``../shared/reference/auroracap.md`` §4.3), written as one pure function.
Legend: F frames, T tokens (CLS at index 0), C channels, D metric width, k tokens removed in this layer.

Semantics, per frame (frames never interact):

1. ``k = min(r, (T - 1) // 2)``; ``k <= 0`` returns the inputs unchanged (exact identity).
2. Cosine similarity of the metric between A = even positions (CLS is A[0]) and B = odd positions.
   CLS's row is ``-inf``, so it is never merged away; B holds only odd positions, so CLS is never a
   destination either.
3. ``best[a] = max_b S[a, b]`` and ``match[a] = argmax_b S[a, b]``.
4. The k A-tokens with the largest ``best`` are sources; each is summed into ``match`` of it, weighted by
   its size (several sources may share a destination). Survivors keep their original relative order.
5. Output order: ``[surviving A tokens in original order (CLS first); all B tokens in original order]``;
   ``x_out = sum(x * size) / sum(size)`` per output token, ``size_out`` = patches represented.

Tie rule (deterministic, and the one the Triton kernel follows): in step 3 the lowest B index among equal
maxima wins; in step 4 equal ``best`` values are ranked by ascending A index (a stable descending sort).
The upstream code used an unstable sort, so on exact ties it may pick differently; with continuous inputs
ties do not occur.
"""

from __future__ import annotations

import torch


def merge_count(r: int, num_tokens: int) -> int:
    """Tokens removed by one merge step: ``min(r, (T - 1) // 2)``, never negative."""
    return max(0, min(int(r), (num_tokens - 1) // 2))


def bipartite_merge_ref(
    x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One merge step for a batch of frames that all use the same r.

    Args:
        x: tokens ``[F, T, C]``, CLS at index 0.
        size: patches each token represents ``[F, T]`` (ones before the first layer).
        metric: keys averaged over heads ``[F, T, D]`` (not yet normalised).
        r: tokens to remove (capped at ``(T - 1) // 2``).

    Returns:
        ``(x_out [F, T - k, C], size_out [F, T - k])`` in the order described in the module docstring.
        Arithmetic is in ``x``'s dtype, as upstream (fp16 on GPU, fp32 in CPU tests).
    """
    num_frames, num_tokens, channels = x.shape
    k = merge_count(r, num_tokens)
    if k == 0:
        return x, size

    m = metric / metric.norm(dim=-1, keepdim=True)
    scores = m[:, 0::2] @ m[:, 1::2].transpose(1, 2)  # [F, |A|, |B|]
    scores[:, 0, :] = float("-inf")
    best, match = scores.max(dim=-1)  # first maximal index on ties
    order = torch.sort(best, dim=-1, descending=True, stable=True).indices  # [F, |A|]
    src_idx = order[:, :k]
    keep_idx = order[:, k:].sort(dim=-1).values  # survivors back in original order (CLS first)
    dst_idx = match.gather(1, src_idx)

    xw = x * size.unsqueeze(-1).to(x.dtype)
    xa, xb = xw[:, 0::2], xw[:, 1::2].clone()
    sa, sb = size[:, 0::2], size[:, 1::2].clone()
    xb.scatter_add_(1, dst_idx.unsqueeze(-1).expand(-1, -1, channels), xa.gather(1, src_idx.unsqueeze(-1).expand(-1, -1, channels)))
    sb.scatter_add_(1, dst_idx, sa.gather(1, src_idx))

    x_keep = xa.gather(1, keep_idx.unsqueeze(-1).expand(-1, -1, channels))
    size_out = torch.cat([sa.gather(1, keep_idx), sb], dim=1)
    x_out = torch.cat([x_keep, xb], dim=1) / size_out.unsqueeze(-1).to(x.dtype)
    return x_out, size_out


def bipartite_merge_ref_per_frame(
    x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge step with a different r per frame (the contract of the Triton launcher).

    Args:
        x ``[F, T, C]``, size ``[F, T]``, metric ``[F, T, D]`` as in :func:`bipartite_merge_ref`;
        r: int tensor ``[F]``.

    Returns:
        ``(x_out [F, T - k_min, C], size_out [F, T - k_min], n_out [F])`` where frame f's valid rows are
        ``[:n_out[f]]`` and the rest are zero (tokens and sizes), ``k_min`` the smallest per-frame k.
    """
    num_frames, num_tokens, channels = x.shape
    ks = [merge_count(int(rf), num_tokens) for rf in r.tolist()]
    width = num_tokens - min(ks) if ks else num_tokens
    x_out = x.new_zeros(num_frames, width, channels)
    size_out = size.new_zeros(num_frames, width)
    n_out = torch.tensor([num_tokens - k for k in ks], dtype=torch.int64, device=x.device)
    for f, k in enumerate(ks):
        xf, sf = bipartite_merge_ref(x[f : f + 1], size[f : f + 1], metric[f : f + 1], k)
        x_out[f, : num_tokens - k] = xf[0]
        size_out[f, : num_tokens - k] = sf[0]
    return x_out, size_out, n_out
