"""Token merging (AuroraCap's ToMe step) — Triton kernels and their launcher.

Same contract as :func:`aurora_serve.kernels.tome_ref.bipartite_merge_ref_per_frame` (semantics, output
order and tie rule are documented there). Legend: F frames, T tokens (CLS at 0), C channels, D metric
width, k tokens removed from a frame; A = even positions (``n_a = ceil(T/2)``), B = odd (``T // 2``).

Three launches per merge step, nothing of size ``n_a x n_b`` ever reaches global memory:

1. ``_match_kernel`` (grid ``cdiv(n_a, BLOCK_A) x F``): streams B tiles, scores each against the block's A
   rows with fp32 ``tl.dot`` over D in chunks of 16 (rows unit-normalised chunk by chunk), and keeps a
   running max / first argmax per A row.
2. ``_plan_kernel`` (grid ``F``): rank of each A token = number of A tokens that beat it under the tie rule,
   counted blockwise (``n_a^2`` compares, ~0.13 M for T = 730); rank < k makes a source. Writes the
   sources by rank, their destinations, and the A index of every survivor's output slot.
3. ``_merge_kernel`` (grid ``cdiv(T - k_min, BLOCK_R) x F x cdiv(C, BLOCK_C)``): each output row *pulls*
   its token and, for a B row, its sources in rank order. Each destination sums its own weighted value
   first, then its sources by ascending rank — a fixed order, no atomics, so results are bitwise
   reproducible (the order of a sequential ``scatter_add_``; upstream's CUDA scatter uses atomics).

Numerics: similarity in fp32 with IEEE dot (no TF32: it would flip merge decisions against the reference),
weighted sums and sizes accumulated in fp32, one rounding to the output dtype at the end. Survivors and
B rows without sources are copied exactly. Metric rows of zero norm are unsupported (the reference gives
NaN there); the kernels stay in bounds and still never merge CLS.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_FLT_LOWEST = tl.constexpr(-3.4028234663852886e38)  # lowest finite fp32


@triton.jit
def _metric_chunk(base, stride_t, stride_d, tok, row_mask, offs_d, D):
    """metric[tok, offs_d] as fp32 ``[len(tok), len(offs_d)]``; zero outside the rows and past D."""
    mask = row_mask[:, None] & (offs_d[None, :] < D)
    return tl.load(base + tok[:, None] * stride_t + offs_d[None, :] * stride_d, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _row_norms(base, stride_t, stride_d, tok, row_mask, D, BLOCK_D: tl.constexpr):
    """L2 norms (fp32, correctly rounded sqrt) of metric rows ``tok``; 1 for padding rows (no 0/0 later)."""
    offs_d = tl.arange(0, BLOCK_D)
    ssq = tl.where(row_mask, 0.0, 0.0)
    for d0 in range(0, D, BLOCK_D):
        m = _metric_chunk(base, stride_t, stride_d, tok, row_mask, d0 + offs_d, D)
        ssq += tl.sum(m * m, axis=1)
    return tl.where(row_mask, tl.sqrt_rn(ssq), 1.0)


@triton.jit
def _match_kernel(metric_ptr, best_ptr, match_ptr, T, D, stride_mf, stride_mt, stride_md,
                  BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    """best[f, a] = max_b cos(A_a, B_b) (CLS: -inf), match[f, a] = lowest b attaining it; both ``[F, n_a]``.

    D is walked in chunks of BLOCK_D (16: D = 80 is five chunks, no padding), so only a chunk of each
    operand and the score tile are live: whole-D operands made the fp32 FMA dot spill (sm_90 ptxas,
    32 x 64 x 128 tiles: 168 registers and 1.6 KB of spill stores per thread)."""
    f = tl.program_id(1)
    n_a = (T + 1) // 2
    n_b = T // 2
    offs_a = tl.program_id(0) * BLOCK_A + tl.arange(0, BLOCK_A)
    mask_a = offs_a < n_a
    offs_d = tl.arange(0, BLOCK_D)
    base = metric_ptr + f.to(tl.int64) * stride_mf
    norm_a = _row_norms(base, stride_mt, stride_md, 2 * offs_a, mask_a, D, BLOCK_D)
    best = tl.full([BLOCK_A], float("-inf"), tl.float32)
    match = tl.zeros([BLOCK_A], dtype=tl.int32)
    for b0 in range(0, n_b, BLOCK_B):
        offs_b = b0 + tl.arange(0, BLOCK_B)
        mask_b = offs_b < n_b
        norm_b = _row_norms(base, stride_mt, stride_md, 2 * offs_b + 1, mask_b, D, BLOCK_D)
        s = tl.zeros([BLOCK_A, BLOCK_B], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            # Unit rows, chunk by chunk: each element is divided by its row's norm (IEEE division).
            ma = tl.math.div_rn(_metric_chunk(base, stride_mt, stride_md, 2 * offs_a, mask_a, d0 + offs_d, D),
                                norm_a[:, None])
            mb = tl.math.div_rn(_metric_chunk(base, stride_mt, stride_md, 2 * offs_b + 1, mask_b, d0 + offs_d, D),
                                norm_b[:, None])
            s = tl.dot(ma, tl.trans(mb), s, input_precision="ieee")  # [BLOCK_A, BLOCK_B]
        s = tl.where(mask_b[None, :], s, float("-inf"))
        tile_best = tl.max(s, axis=1)
        tile_arg = tl.min(tl.where(s == tile_best[:, None], offs_b[None, :], n_b), axis=1)
        # Tiles run in ascending b and only a strictly larger value replaces the running best, so the
        # first maximum wins across tiles as it does within one (tie rule). NaN never compares greater,
        # so match always stays a valid B index.
        better = tile_best > best
        best = tl.where(better, tile_best, best)
        match = tl.where(better, tile_arg, match)
    # CLS ranks strictly last: every other row is clamped above -inf (only matters for degenerate rows).
    best = tl.where(offs_a == 0, float("-inf"), tl.maximum(best, _FLT_LOWEST))
    out = f * n_a + offs_a
    tl.store(best_ptr + out, best, mask=mask_a)
    tl.store(match_ptr + out, match, mask=mask_a)


@triton.jit
def _plan_kernel(best_ptr, match_ptr, k_ptr, src_ptr, dst_ptr, keep_ptr, T, BLOCK: tl.constexpr):
    """Per frame: ``src[rank] = a`` and ``dst[rank] = match[a]`` for the k sources; ``keep[slot] = a`` for
    the ``n_a - k`` survivors in ascending a. All three are ``[F, n_a]`` int32, only those prefixes written."""
    f = tl.program_id(0)
    n_a = (T + 1) // 2
    k = tl.load(k_ptr + f)
    row = f * n_a
    n_src_before = k * 0  # sources among the A tokens of earlier tiles (an int32 scalar tensor)
    for i0 in range(0, n_a, BLOCK):
        offs_i = i0 + tl.arange(0, BLOCK)
        mask_i = offs_i < n_a
        b_i = tl.load(best_ptr + row + offs_i, mask=mask_i, other=0.0)
        rank = tl.zeros([BLOCK], dtype=tl.int32)
        for j0 in range(0, n_a, BLOCK):
            offs_j = j0 + tl.arange(0, BLOCK)
            mask_j = offs_j < n_a
            b_j = tl.load(best_ptr + row + offs_j, mask=mask_j, other=0.0)
            # j beats i: larger best, or equal best and smaller index (stable descending sort).
            ties = (b_j[None, :] == b_i[:, None]) & (offs_j[None, :] < offs_i[:, None])
            beats = (b_j[None, :] > b_i[:, None]) | ties
            rank += tl.sum((beats & mask_j[None, :]).to(tl.int32), axis=1)
        is_src = mask_i & (rank < k)
        m_i = tl.load(match_ptr + row + offs_i, mask=mask_i, other=0)
        tl.store(src_ptr + row + rank, offs_i, mask=is_src)
        tl.store(dst_ptr + row + rank, m_i, mask=is_src)
        src_i32 = is_src.to(tl.int32)
        earlier = n_src_before + tl.cumsum(src_i32, axis=0) - src_i32  # sources with a smaller index
        tl.store(keep_ptr + row + offs_i - earlier, offs_i, mask=mask_i & (rank >= k))
        n_src_before += tl.sum(src_i32, axis=0)


@triton.jit
def _merge_kernel(x_ptr, size_ptr, src_ptr, dst_ptr, keep_ptr, k_ptr, x_out_ptr, size_out_ptr,
                  T, C, width, stride_xf, stride_xt, stride_sf, stride_st,
                  BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """BLOCK_R output rows of frame f: ``x_out [F, width, C]``, ``size_out [F, width]``; zero past ``T - k``."""
    f = tl.program_id(1)
    pid_c = tl.program_id(2)
    n_a = (T + 1) // 2
    k = tl.load(k_ptr + f)
    n_keep = n_a - k
    plan = f * n_a
    p = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    valid = p < T - k
    b = p - n_keep  # B index of a B row; negative for A rows
    is_b = (b >= 0) & valid
    a_keep = tl.load(keep_ptr + plan + p, mask=p < n_keep, other=0)
    tok = tl.where(b >= 0, 2 * b + 1, 2 * a_keep)
    tok = tl.where(k == 0, p, tok).to(tl.int64)  # k = 0 is the exact identity: raster order, no A/B split

    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    x_f = x_ptr + f.to(tl.int64) * stride_xf
    s_f = size_ptr + f.to(tl.int64) * stride_sf
    mask = valid[:, None] & (offs_c[None, :] < C)
    val = tl.load(x_f + tok[:, None] * stride_xt + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)
    tot = tl.load(s_f + tok * stride_st, mask=valid, other=0).to(tl.float32)

    # Most tiles receive no source: test all destinations at once before the ordered slow path.
    offs_k = tl.arange(0, BLOCK_K)
    dests = tl.load(dst_ptr + plan + offs_k, mask=offs_k < k, other=-1)
    hits = tl.sum(((dests[None, :] == b[:, None]) & is_b[:, None]).to(tl.int32), axis=1)  # [BLOCK_R]
    if tl.sum(hits, axis=0) > 0:
        acc = val * tot[:, None]
        for j in range(0, k):  # ascending rank: the fixed summation order of every destination
            mine = is_b & (b == tl.load(dst_ptr + plan + j))
            if tl.sum(mine.to(tl.int32), axis=0) > 0:
                a2 = 2 * tl.load(src_ptr + plan + j).to(tl.int64)
                s_a = tl.load(s_f + a2 * stride_st).to(tl.float32)
                x_a = tl.load(x_f + a2 * stride_xt + offs_c, mask=offs_c < C, other=0.0).to(tl.float32)
                acc += tl.where(mine[:, None], x_a[None, :] * s_a, 0.0)
                tot += tl.where(mine, s_a, 0.0)
        # Rows without sources keep their exact copy (x * s / s could round); padding rows divide by 1.
        val = tl.where(hits[:, None] > 0, acc / tl.where(hits > 0, tot, 1.0)[:, None], val)

    out = f.to(tl.int64) * width + p
    in_width = p < width
    tl.store(x_out_ptr + out[:, None] * C + offs_c[None, :], val.to(x_out_ptr.dtype.element_ty),
             mask=in_width[:, None] & (offs_c[None, :] < C))
    # (`p < where(...)`, not `in_width & (pid_c == 0)`: the interpreter turns bool & 0-d bool into int)
    tl.store(size_out_ptr + out, tot.to(size_out_ptr.dtype.element_ty), mask=p < tl.where(pid_c == 0, width, 0))


def launch_configs(num_tokens: int, channels: int, k_max: int) -> dict[str, dict[str, int]]:
    """Block sizes, warps and stages of the three launches for frames of ``num_tokens`` tokens.

    One place, so ``benchmarks/kernel_resources.py`` compiles exactly what the launcher runs. The choices
    were read off sm_90 ``ptxas -v`` (no spills at AuroraCap's shapes; tests/kernels/test_resources.py);
    their speed is for a GPU session to measure (benchmarks/bench_tome.py).
    """
    n_a = (num_tokens + 1) // 2
    # 64 x 64 compares per plan step on 8 warps: 128 x 128 spilled on sm_90 (360 B per thread on 4 warps
    # with Triton 3.9, 96 B on 8 warps with Triton 3.6, the device machine's); smaller frames need less.
    block_plan = min(64, max(16, triton.next_power_of_2(n_a)))
    # ~4-8 K elements per merge program: one row of C = 1280 is too little work, C = 64 (tests) needs many rows.
    block_c = min(triton.next_power_of_2(channels), 4096)
    block_r = max(1, min(16, 8192 // block_c))
    return {
        # One stage: two made the fp32-metric variant spill and changed nothing for fp16 / bf16.
        "_match_kernel": {"BLOCK_A": 32, "BLOCK_B": 64, "BLOCK_D": 16, "num_warps": 4, "num_stages": 1},
        "_plan_kernel": {"BLOCK": block_plan, "num_warps": 8 if block_plan == 64 else 4},
        "_merge_kernel": {"BLOCK_R": block_r, "BLOCK_C": block_c, "BLOCK_K": max(16, triton.next_power_of_2(k_max)),
                          "num_warps": 4 if block_r * block_c <= 4096 else 8},
    }


def tome_merge_triton(
    x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: torch.Tensor, *, poison_outputs: bool = False,
    config_overrides: dict[str, dict[str, int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One merge step, a different r per frame allowed.

    Args:
        x: tokens ``[F, T, C]`` (fp32 / fp16 / bf16), CLS at index 0.
        size: patches per token ``[F, T]`` (float or integer dtype; kept for the output).
        metric: keys averaged over heads ``[F, T, D]``, any float dtype, any strides.
        r: integer tensor ``[F]``; ``k_f = min(max(r_f, 0), (T - 1) // 2)``. Read on the host: pass it
            on the CPU to avoid a device sync.
        poison_outputs: test hook; pre-fill every buffer the kernels must write with garbage (NaN / -7 /
            index 0) so a skipped write shows up.
        config_overrides: tuning hook (benchmarks/bench_tome.py --sweep); per kernel name, entries that
            replace those of :func:`launch_configs`, e.g. ``{"_merge_kernel": {"BLOCK_C": 256}}``.

    Returns:
        ``(x_out [F, T - k_min, C], size_out [F, T - k_min], n_out [F] int64)``; frame f's rows
        ``[:n_out[f]]`` are valid and the rest are zero.
    """
    if x.dim() != 3 or size.shape != x.shape[:2] or metric.dim() != 3 or metric.shape[:2] != x.shape[:2]:
        raise ValueError(f"expected x [F,T,C], size [F,T], metric [F,T,D]; got {tuple(x.shape)}, "
                         f"{tuple(size.shape)}, {tuple(metric.shape)}")
    if r.shape != (x.shape[0],) or r.dtype.is_floating_point:
        raise ValueError(f"r must be an integer tensor [F={x.shape[0]}], got {r.dtype} {tuple(r.shape)}")
    if not (x.device == size.device == metric.device):
        raise ValueError(f"x, size, metric on different devices: {x.device}, {size.device}, {metric.device}")
    num_frames, num_tokens, channels = x.shape
    dev = x.device
    ks = r.detach().to("cpu", torch.int64).clamp(0, max(0, (num_tokens - 1) // 2))
    k_min, k_max = (int(ks.min()), int(ks.max())) if num_frames else (0, 0)
    # k on the device without a pageable host-to-device copy (that would stall the host on the stream):
    # a fill for uniform r (AuroraCap's case), a pinned asynchronous copy otherwise.
    if k_min == k_max:
        k_dev = torch.full((num_frames,), k_min, device=dev, dtype=torch.int32)
    elif dev.type == "cuda":
        k_dev = ks.to(torch.int32).pin_memory().to(dev, non_blocking=True)
    else:
        k_dev = ks.to(dev, torch.int32)
    n_out = num_tokens - k_dev.to(torch.int64)
    if k_max == 0:
        return x.clone(), size.clone(), n_out  # identity: nothing to match
    width, n_a, dim = num_tokens - k_min, (num_tokens + 1) // 2, metric.shape[2]
    x = x if x.stride(2) == 1 else x.contiguous()

    # One int32 workspace [5, F, n_a]: best (as fp32), match, and the plan (src, dst, keep).
    work = torch.empty(5, num_frames, n_a, device=dev, dtype=torch.int32)
    best, match, src, dst, keep = work[0].view(torch.float32), work[1], work[2], work[3], work[4]
    x_out = torch.empty(num_frames, width, channels, device=dev, dtype=x.dtype)
    size_out = torch.empty(num_frames, width, device=dev, dtype=size.dtype)
    if poison_outputs:
        x_out.fill_(float("nan"))
        size_out.fill_(-7)
        work[2:].zero_()  # a stale plan read then points at a real (wrong) token, not out of bounds

    cfg = launch_configs(num_tokens, channels, k_max)
    for name, override in (config_overrides or {}).items():
        cfg[name] = {**cfg[name], **override}
    match_cfg, plan_cfg, merge_cfg = cfg["_match_kernel"], cfg["_plan_kernel"], cfg["_merge_kernel"]
    _match_kernel[(triton.cdiv(n_a, match_cfg["BLOCK_A"]), num_frames)](
        metric, best, match, num_tokens, dim, *metric.stride(), **match_cfg)
    _plan_kernel[(num_frames,)](best, match, k_dev, src, dst, keep, num_tokens, **plan_cfg)
    _merge_kernel[(triton.cdiv(width, merge_cfg["BLOCK_R"]), num_frames, triton.cdiv(channels, merge_cfg["BLOCK_C"]))](
        x, size, src, dst, keep, k_dev, x_out, size_out, num_tokens, channels, width,
        x.stride(0), x.stride(1), size.stride(0), size.stride(1), **merge_cfg)
    return x_out, size_out, n_out
