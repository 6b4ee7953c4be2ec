"""Triton token merging (aurora_serve/kernels/tome.py) against the PyTorch reference (tome_ref.py).

Without a GPU the kernels run in the Triton interpreter, in a child pytest (conftest.py), so channels stay
small; with one, the same tests run the compiled kernels. Every launch pre-fills its outputs with garbage
(``poison_outputs``), so each check also proves the kernels wrote every element they own.
Inputs are fresh each run; the seed is in every assertion message. Legend: F, T, C, D, k as in tome_ref.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import torch

from aurora_serve.kernels.dispatch import merge_step, resolve_backend
from aurora_serve.kernels.tome_ref import bipartite_merge_ref, bipartite_merge_ref_per_frame, merge_count

# Kernel output vs the float64 reference on the same inputs, as (atol, rtol). The kernel accumulates in
# fp32 and rounds once to the output dtype, so the error is one output rounding (fp16 2^-11, bf16 2^-8
# relative; ~2x margin) plus fp32 accumulation over <= k + 1 terms (~1e-7 relative). Sizes are small
# integers, exact in every dtype used here, and must match exactly.
TOLERANCE = {
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (8e-3, 8e-3),
}
# Random metrics whose merge plan hinges on a score gap below this are redrawn: the kernel scores in
# fp32 (error <= ~D * 2^-24, about 1e-6 for D <= 24), the reference here in fp64, so a smaller gap may
# legitimately flip a decision. Exact ties are tested separately, on inputs where both are exact.
PLAN_MARGIN = 1e-5
DTYPES = list(TOLERANCE)

CASES = [  # (F, T, C, D, r per frame)
    (3, 9, 64, 16, (0, 1, 4)),  # odd T; r = 0 beside r at the cap (T - 1) // 2 in one launch
    (3, 10, 40, 20, (5, 2, 9)),  # even T; r above the cap; C, D not powers of two
    (2, 3, 33, 16, (1, 7)),  # the smallest T that can merge
    (3, 2, 16, 16, (1, 0, 3)),  # T = 2: the cap is 0, identity
    (2, 131, 48, 24, (40, 65)),  # several A and B tiles; 65 is the cap
    (4, 64, 64, 16, (0, 0, 0, 0)),  # r = 0 everywhere
    (2, 41, 32, 80, (6, 20)),  # AuroraCap's D = 80: five chunks of the similarity's D loop
]


def _seed() -> int:
    return random.SystemRandom().randrange(2**31)


def _plan_margin(metric: torch.Tensor, ks: list[int]) -> float:
    """Smallest fp64 score gap any merge decision of this step depends on (argmax of a source, the cut)."""
    m = metric.double() / metric.double().norm(dim=-1, keepdim=True)
    scores = m[:, 0::2] @ m[:, 1::2].transpose(1, 2)
    scores[:, 0, :] = float("-inf")
    margin = float("inf")
    for f, k in enumerate(ks):
        if k == 0:
            continue
        top = scores[f].topk(min(2, scores.shape[2]), dim=-1).values
        best = top[:, 0].sort(descending=True).values
        order = top[:, 0].argsort(descending=True)[:k]
        if top.shape[1] == 2:
            margin = min(margin, float((top[order, 0] - top[order, 1]).min()))
        margin = min(margin, float(best[k - 1] - best[k]))
    return margin


def _draw(shape: tuple[int, int, int, int], r: tuple[int, ...], dtype: torch.dtype, seed: int):
    """Random ``x [F,T,C]`` and ``metric [F,T,D]`` in ``dtype``, sizes ``[F,T]`` in 1..4 (as after a few layers)."""
    num_frames, num_tokens, channels, dim = shape
    gen = torch.Generator().manual_seed(seed)
    ks = [merge_count(rf, num_tokens) for rf in r]
    x = torch.randn(num_frames, num_tokens, channels, generator=gen).to(dtype)
    size = torch.randint(1, 5, (num_frames, num_tokens), generator=gen).float()
    for _ in range(50):
        metric = torch.randn(num_frames, num_tokens, dim, generator=gen).to(dtype)
        if _plan_margin(metric, ks) > PLAN_MARGIN:
            return x, size, metric
    raise AssertionError(f"no tie-free metric in 50 draws (seed {seed})")


def _launch(tome_kernels, x, size, metric, r):
    """Run the launcher on the test device with poisoned outputs; results back on the CPU."""
    tome, device = tome_kernels
    outs = tome.tome_merge_triton(x.to(device), size.to(device), metric.to(device), torch.tensor(r),
                                  poison_outputs=True)
    return tuple(t.cpu() for t in outs)


def _check(got, x, size, metric, r, dtype, msg, ref_dtype=torch.float64):
    """Compare with the reference frame by frame: values, exact sizes, zero padding, conserved sizes."""
    x_out, size_out, n_out = got
    want_x, want_size, want_n = bipartite_merge_ref_per_frame(
        x.to(ref_dtype), size.to(ref_dtype), metric.to(ref_dtype), torch.tensor(r))
    assert x_out.dtype == x.dtype and size_out.dtype == size.dtype, msg
    assert x_out.shape == want_x.shape and torch.equal(n_out, want_n), msg
    atol, rtol = TOLERANCE[dtype]
    for f, n in enumerate(n_out.tolist()):
        torch.testing.assert_close(x_out[f, :n].double(), want_x[f, :n].double(), atol=atol, rtol=rtol,
                                   msg=lambda m, f=f: f"{msg} frame {f}: {m}")
        assert torch.equal(size_out[f, :n].double(), want_size[f, :n].double()), f"{msg} frame {f}: sizes"
        assert float(size_out[f, :n].sum()) == float(size[f].sum()), f"{msg} frame {f}: size total"
        assert not x_out[f, n:].any() and not size_out[f, n:].any(), f"{msg} frame {f}: padding not zero"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"F{c[0]}-T{c[1]}-C{c[2]}-D{c[3]}-r{'_'.join(map(str, c[4]))}")
def test_matches_reference(tome_kernels, case, dtype):
    *shape, r = case
    seed = _seed()
    x, size, metric = _draw(tuple(shape), r, dtype, seed)
    _check(_launch(tome_kernels, x, size, metric, r), x, size, metric, r, dtype, f"seed {seed}")


@pytest.mark.parametrize("num_tokens", [731, 730])
def test_auroracap_like_shape(tome_kernels, num_tokens):
    """First-layer T with AuroraCap's largest r (22) beside a small one; narrow C / D for the interpreter."""
    r, seed = (22, 3), _seed()
    x, size, metric = _draw((2, num_tokens, 64, 16), r, torch.float16, seed)
    _check(_launch(tome_kernels, x, size, metric, r), x, size, metric, r, torch.float16, f"seed {seed}")


def test_launch_config_variants_compute_the_same_step(tome_kernels):
    """Every launch-configuration variant bench_tome --sweep times is still the same merge step."""
    from benchmarks.bench_tome import SWEEP

    tome, device = tome_kernels
    r, seed = (6, 20), _seed()
    x, size, metric = _draw((2, 41, 96, 80), r, torch.float32, seed)
    for variant, overrides in SWEEP.items():
        got = tome.tome_merge_triton(x.to(device), size.to(device), metric.to(device), torch.tensor(r),
                                     poison_outputs=True, config_overrides=overrides)
        _check(tuple(t.cpu() for t in got), x, size, metric, r, torch.float32, f"{variant} seed {seed}")


def test_integer_and_low_precision_sizes(tome_kernels):
    """Sizes keep their own dtype (int64, or fp16 as upstream keeps them) and are summed exactly."""
    r, seed = (4, 2), _seed()
    x, size, metric = _draw((2, 21, 32, 16), r, torch.float16, seed)
    for size_dtype in (torch.int64, torch.float16):
        sized = size.to(size_dtype)
        got = _launch(tome_kernels, x, sized, metric, r)
        _check(got, x, sized, metric, r, torch.float16, f"seed {seed} {size_dtype}")


@pytest.mark.parametrize("num_tokens, k", [(11, 3), (151, 40)])  # 151: ties across B tiles (64 wide)
def test_identical_metric_rows_follow_tie_rule(tome_kernels, num_tokens, k):
    """All scores equal: argmax takes B[0], ranking takes A[1..k] (lowest indices), CLS survives."""
    x = torch.arange(num_tokens, dtype=torch.float32)[None, :, None].expand(1, num_tokens, 8).contiguous()
    metric = torch.ones(1, num_tokens, 16)
    x_out, size_out, n_out = _launch(tome_kernels, x, torch.ones(1, num_tokens), metric, (k,))
    # e.g. T = 11, k = 3: survivors 0, 8, 10; then token 1 absorbing 2, 4, 6; then 3, 5, 7, 9
    absorbed = [1] + list(range(2, 2 * k + 1, 2))
    want = [0] + list(range(2 * k + 2, num_tokens, 2)) + [sum(absorbed) / (k + 1)] + list(range(3, num_tokens, 2))
    torch.testing.assert_close(x_out[0, :, 0], torch.tensor(want), atol=0, rtol=1e-6)  # GPU fp32 "/" is not IEEE
    assert n_out.tolist() == [num_tokens - k]
    assert size_out[0].tolist() == [1] * ((num_tokens + 1) // 2 - k) + [k + 1] + [1] * (num_tokens // 2 - 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_exact_ties_match_reference(tome_kernels, dtype):
    """Metric rows of four +-1 entries (norm exactly 2) with duplicated rows: every score is a multiple of
    1/4, exact in any arithmetic, so ties abound and both sides must apply the same tie rule exactly."""
    num_frames, num_tokens, dim, seed = 3, 141, 16, _seed()  # 141: several A and B tiles
    gen = torch.Generator().manual_seed(seed)
    pos = torch.rand(num_frames, num_tokens, dim, generator=gen).argsort(dim=-1)[..., :4]
    signs = torch.randint(0, 2, (num_frames, num_tokens, 4), generator=gen).float() * 2 - 1
    metric = torch.zeros(num_frames, num_tokens, dim).scatter_(2, pos, signs)
    metric[:, 10:20] = metric[:, 20:30]  # duplicated rows, in both A and B ...
    metric[:, 131:141] = metric[:, 1:11]  # ... and across tiles
    x = torch.randn(num_frames, num_tokens, 24, generator=gen).to(dtype)
    size = torch.randint(1, 5, (num_frames, num_tokens), generator=gen).float()
    r = (70, 7, 33)  # 70: the cap
    _check(_launch(tome_kernels, x, size, metric.to(dtype), r), x, size, metric, r, dtype, f"seed {seed}")


def test_strided_inputs(tome_kernels):
    """Views as the model may pass them: x a channel slice, metric every other column, size transposed."""
    (tome, device), r, seed = tome_kernels, (5, 3), _seed()
    x, size, metric = _draw((2, 23, 24, 16), r, torch.float16, seed)
    x_dev, metric_dev = x.to(device), metric.to(device)  # views built on the device: .to() would densify
    x_view = torch.cat([x_dev, torch.zeros_like(x_dev)], dim=2)[:, :, :24]  # stride(1) = 48
    metric_view = torch.stack([metric_dev, torch.zeros_like(metric_dev)], dim=-1).flatten(2)[:, :, ::2]
    size_view = size.to(device).t().contiguous().t()  # stride (1, F)
    assert x_view.stride(1) == 48 and metric_view.stride(2) == 2 and size_view.stride(1) == 2
    got = tome.tome_merge_triton(x_view, size_view, metric_view, torch.tensor(r), poison_outputs=True)
    _check(tuple(t.cpu() for t in got), x, size, metric, r, torch.float16, f"seed {seed}")


def test_bitwise_deterministic(tome_kernels):
    """Fixed summation order (no atomics): two runs agree bit for bit."""
    r, seed = (9, 6), _seed()
    x, size, metric = _draw((2, 61, 32, 16), r, torch.bfloat16, seed)
    first, second = (_launch(tome_kernels, x, size, metric, r) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, second)), f"seed {seed}"


def test_rejects_bad_inputs(tome_kernels):
    tome, _ = tome_kernels
    x, size, metric = torch.zeros(2, 5, 8), torch.ones(2, 5), torch.ones(2, 5, 16)
    with pytest.raises(ValueError, match="expected x"):
        tome.tome_merge_triton(x, size[:, :4], metric, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="integer tensor"):
        tome.tome_merge_triton(x, size, metric, torch.tensor([1.0, 1.0]))


def test_dispatch_picks_reference_on_cpu():
    seed = _seed()
    x, size, metric = _draw((2, 15, 16, 16), (3, 3), torch.float32, seed)
    assert resolve_backend(None, x.device) == resolve_backend("auto", x.device) == "reference"
    assert resolve_backend("triton", x.device) == "triton"
    for got, want in zip(merge_step(x, size, metric, 3), bipartite_merge_ref(x, size, metric, 3)):
        assert torch.equal(got, want), f"seed {seed}"
    r = torch.tensor([3, 0])
    for got, want in zip(merge_step(x, size, metric, r), bipartite_merge_ref_per_frame(x, size, metric, r)):
        assert torch.equal(got, want), f"seed {seed}"
    with pytest.raises(ValueError, match="unknown merge backend"):
        merge_step(x, size, metric, 3, backend="cuda")


def test_dispatch_forced_triton_uniform_r_is_dense(tome_kernels):
    _, device = tome_kernels
    r, seed = 4, _seed()
    x, size, metric = _draw((2, 17, 16, 16), (r, r), torch.float32, seed)
    got = merge_step(x.to(device), size.to(device), metric.to(device), r, backend="triton")
    want = bipartite_merge_ref(x.double(), size.double(), metric.double(), r)
    assert len(got) == 2 and got[0].shape == (2, 17 - r, 16), f"seed {seed}"
    atol, rtol = TOLERANCE[torch.float32]
    torch.testing.assert_close(got[0].cpu().double(), want[0], atol=atol, rtol=rtol, msg=lambda m: f"seed {seed}: {m}")
    assert torch.equal(got[1].cpu().double(), want[1]), f"seed {seed}"
    assert merge_step(x, size, metric, 0, backend="triton")[0] is x  # r = 0: identity, as the reference


def test_interpreter_suite_in_subprocess(kernel_mode):
    """CPU without TRITON_INTERPRET (see conftest): this file again in a child pytest that interprets."""
    if kernel_mode != "subprocess":
        pytest.skip(f"kernels run in this process ({kernel_mode})")
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider", __file__],
                           env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stdout[-6000:] + child.stderr[-2000:]
