"""CPU stand-in for ``sgl_kernel`` (see ``aurora_cpu_compat`` docs, obstacle 2).

Only the two symbols SGLang's CPU engine imports unconditionally are implemented, in plain PyTorch.
Any other name imports but raises ``NotImplementedError`` when called, so a code path that really needs a
native kernel fails loudly instead of silently computing something else.
"""

from __future__ import annotations

import ctypes

import torch

__version__ = "0.0.0+aurora.cpu.stub"


def assign_req_to_token_pool_cpu(
    req_pool_indices: torch.Tensor,
    req_to_token: torch.Tensor,
    start_offset: torch.Tensor,
    end_offset: torch.Tensor,
    out_cache_loc: torch.Tensor,
    pool_len: int,
) -> None:
    """Write each request's new KV slots into its row of the request→token table.

    Request i (in batch order) takes the next ``end_offset[i] - start_offset[i]`` entries of
    ``out_cache_loc`` (consumed consecutively across requests) into
    ``req_to_token[req_pool_indices[i], start_offset[i]:end_offset[i]]``. ``pool_len`` is unused.
    """
    del pool_len
    starts = start_offset.tolist()
    ends = end_offset.tolist()
    rows = req_pool_indices.tolist()
    pos = 0
    for row, start, end in zip(rows, starts, ends):
        n = end - start
        req_to_token[row, start:end] = out_cache_loc[pos : pos + n].to(req_to_token.dtype)
        pos += n


def copy_all_layer_kv_cache_cpu(
    data_ptrs: torch.Tensor, strides: torch.Tensor, tgt_loc: torch.Tensor, src_loc: torch.Tensor
) -> None:
    """Copy KV rows ``src_loc`` → ``tgt_loc`` in every layer buffer.

    ``data_ptrs[b]`` is the address of buffer b and ``strides[b]`` its row size in bytes. Sources are read
    before any target is written, so overlapping moves behave like the GPU kernel's gather-then-store.
    """
    for ptr, stride in zip(data_ptrs.tolist(), strides.tolist()):
        rows = []
        for s in src_loc.tolist():
            buf = (ctypes.c_uint8 * stride)()
            ctypes.memmove(buf, ptr + s * stride, stride)
            rows.append(buf)
        for t, buf in zip(tgt_loc.tolist(), rows):
            ctypes.memmove(ptr + t * stride, buf, stride)


def __getattr__(name: str):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)

    def _missing(*args, **kwargs):
        raise NotImplementedError(
            f"sgl_kernel.{name} has no CPU implementation in aurora-serve's CPU stub; "
            "this code path needs the real sgl-kernel (GPU install: pip install '.[gpu]')"
        )

    _missing.__name__ = name
    return _missing
