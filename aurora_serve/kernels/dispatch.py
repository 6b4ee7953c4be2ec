"""One entry point for a merge step: the Triton kernels on CUDA, the PyTorch reference elsewhere.

The backend is an explicit argument (house rule 8: settings flow down as arguments, nothing here reads
the environment). Legend: F frames, T tokens, C channels, D metric width, k = min(r, (T - 1) // 2).
"""

from __future__ import annotations

import importlib.util

import torch

from aurora_serve.kernels import MERGE_BACKENDS as BACKENDS
from aurora_serve.kernels.tome_ref import bipartite_merge_ref, bipartite_merge_ref_per_frame, merge_count

# Installed, not imported: importing triton is slow and a broken install should fail loudly when the
# kernels are used, not silently fall back to the slower reference.
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """``"triton"`` or ``"reference"`` for tensors on ``device``; ``None`` means ``"auto"``."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise ValueError(f"unknown merge backend {backend!r}; expected one of {BACKENDS}")
    if backend == "auto":
        return "triton" if device.type == "cuda" and _HAS_TRITON else "reference"
    return backend


def merge_step(
    x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int | torch.Tensor, backend: str | None = None
) -> tuple[torch.Tensor, ...]:
    """One token-merging step (semantics: :mod:`aurora_serve.kernels.tome_ref`).

    Args:
        x ``[F, T, C]``, size ``[F, T]``, metric ``[F, T, D]``.
        r: an ``int`` (same for every frame) or an integer tensor ``[F]``.
        backend: ``"auto"`` (default, also ``None``: Triton for CUDA tensors when triton is installed),
            ``"triton"`` (on CPU tensors only under ``TRITON_INTERPRET=1``) or ``"reference"``.

    Returns:
        int r: ``(x_out [F, T - k, C], size_out [F, T - k])``, all rows valid; ``k = 0`` returns the inputs.
        tensor r: ``(x_out, size_out, n_out)`` padded to ``T - k_min`` as in ``bipartite_merge_ref_per_frame``.
    """
    use_triton = resolve_backend(backend, x.device) == "triton"
    if isinstance(r, torch.Tensor):
        if use_triton:
            from aurora_serve.kernels.tome import tome_merge_triton  # imported on use: needs triton

            return tome_merge_triton(x, size, metric, r)
        return bipartite_merge_ref_per_frame(x, size, metric, r)
    if not use_triton:
        return bipartite_merge_ref(x, size, metric, r)
    if merge_count(r, x.shape[1]) == 0:
        return x, size  # identity, as the reference
    from aurora_serve.kernels.tome import tome_merge_triton

    # Uniform r: every frame keeps T - k rows, so the padded launcher output is already dense.
    x_out, size_out, _ = tome_merge_triton(x, size, metric, torch.full((x.shape[0],), int(r)))
    return x_out, size_out
