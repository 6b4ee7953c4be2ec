"""The PyTorch merge reference against an independent float64 loop implementation (auroracap.md §4.3)."""

import numpy as np
import pytest
import torch

from aurora_serve.kernels.tome_ref import bipartite_merge_ref, bipartite_merge_ref_per_frame


def merge_loop_f64(x: np.ndarray, size: np.ndarray, metric: np.ndarray, r: int):
    """One frame, written from the pseudo-code with Python loops in float64. x [T,C], size [T], metric [T,D]."""
    t = x.shape[0]
    k = max(0, min(r, (t - 1) // 2))
    if k == 0:
        return x.copy(), size.copy()
    m = metric / np.linalg.norm(metric, axis=-1, keepdims=True)
    a_pos, b_pos = list(range(0, t, 2)), list(range(1, t, 2))
    best, match = [], []
    for ai, a in enumerate(a_pos):
        if ai == 0:
            best.append(-np.inf)
            match.append(0)
            continue
        sims = [float(m[a] @ m[b]) for b in b_pos]
        j = int(np.argmax(sims))  # first maximum
        best.append(sims[j])
        match.append(j)
    order = sorted(range(len(a_pos)), key=lambda i: (-best[i], i))  # stable descending
    sources, survivors = order[:k], sorted(order[k:])
    xb = np.stack([x[b] * size[b] for b in b_pos])
    sb = np.array([size[b] for b in b_pos], dtype=np.float64)
    for s in sources:
        xb[match[s]] += x[a_pos[s]] * size[a_pos[s]]
        sb[match[s]] += size[a_pos[s]]
    xa = np.stack([x[a_pos[i]] * size[a_pos[i]] for i in survivors]) if survivors else np.zeros((0, x.shape[1]))
    sa = np.array([size[a_pos[i]] for i in survivors])
    new_size = np.concatenate([sa, sb])
    return np.concatenate([xa, xb]) / new_size[:, None], new_size


def random_case(f, t, c=24, d=8, seed=None):
    g = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, (1,))))
    x = torch.randn(f, t, c, generator=g, dtype=torch.float64)
    metric = torch.randn(f, t, d, generator=g, dtype=torch.float64)
    size = torch.randint(1, 5, (f, t), generator=g).double()
    return x, size, metric


@pytest.mark.parametrize("t", [9, 10, 31, 32, 731])
@pytest.mark.parametrize("r", [0, 1, 3, "cap", "over"])
def test_matches_float64_loop(t, r):
    r = {"cap": (t - 1) // 2, "over": t}.get(r, r)
    x, size, metric = random_case(3, t)
    out_x, out_s = bipartite_merge_ref(x, size, metric, r)
    for f in range(3):
        ex, es = merge_loop_f64(x[f].numpy(), size[f].numpy(), metric[f].numpy(), r)
        np.testing.assert_allclose(out_x[f].numpy(), ex, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(out_s[f].numpy(), es)
        assert out_s[f].sum() == size[f].sum()  # every patch is accounted for


def test_r_zero_is_exact_identity():
    x, size, metric = random_case(2, 11)
    out_x, out_s = bipartite_merge_ref(x, size, metric, 0)
    assert out_x is x and out_s is size


def test_cls_is_first_and_unmerged():
    x, size, metric = random_case(4, 41)
    metric[:, 0] = metric[:, 1]  # CLS looks exactly like a B token: still never merged
    out_x, out_s = bipartite_merge_ref(x, size, metric, 20)
    # x·size/size: equal up to float64 rounding.
    torch.testing.assert_close(out_x[:, 0], x[:, 0], rtol=0, atol=1e-12)
    assert torch.equal(out_s[:, 0], size[:, 0])


def test_ties_follow_documented_rule():
    # Every A token identical to B token 0 → all best values tie: sources are the lowest A indices (after CLS),
    # all merge into B[0] (lowest B index among equal maxima).
    t, c = 9, 4
    x = torch.arange(t * c, dtype=torch.float64).reshape(1, t, c)
    metric = torch.ones(1, t, 3, dtype=torch.float64)
    size = torch.ones(1, t, dtype=torch.float64)
    out_x, out_s = bipartite_merge_ref(x, size, metric, 2)
    assert out_s.tolist() == [[1, 1, 1, 3, 1, 1, 1]]  # survivors CLS, A3, A4 (=pos 0, 6, 8); B0 got A1, A2
    np.testing.assert_allclose(out_x[0, 3].numpy(), ((x[0, 1] + x[0, 2] + x[0, 4]) / 3).numpy())


def test_per_frame_r_matches_uniform_per_frame():
    x, size, metric = random_case(3, 30)
    r = torch.tensor([0, 5, 14])
    out_x, out_s, n = bipartite_merge_ref_per_frame(x, size, metric, r)
    assert n.tolist() == [30, 25, 16] and out_x.shape[1] == 30
    for f in range(3):
        ex, es = bipartite_merge_ref(x[f : f + 1], size[f : f + 1], metric[f : f + 1], int(r[f]))
        assert torch.equal(out_x[f, : n[f]], ex[0]) and torch.equal(out_s[f, : n[f]], es[0])
        assert torch.count_nonzero(out_x[f, n[f] :]) == 0 and torch.count_nonzero(out_s[f, n[f] :]) == 0
