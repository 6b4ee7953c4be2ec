"""The SGLang CPU compatibility pieces (aurora_serve/cpu_compat), as installed into the lean env."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from aurora_serve.cpu_compat.shadow import sgl_kernel as stub

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU compat layer is inactive on CUDA machines")


def test_assign_req_to_token_pool_cpu_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    req_to_token = torch.zeros(5, 32, dtype=torch.int32)
    rows = torch.tensor([3, 0, 4])
    start = torch.tensor([2, 0, 7])
    end = torch.tensor([6, 3, 8])
    out_cache_loc = torch.randint(0, 1000, (8,), generator=g)
    expected = req_to_token.clone()
    pos = 0
    for r, s, e in zip(rows.tolist(), start.tolist(), end.tolist()):
        for j in range(s, e):
            expected[r, j] = int(out_cache_loc[pos])
            pos += 1
    stub.assign_req_to_token_pool_cpu(rows, req_to_token, start, end, out_cache_loc, 32)
    assert torch.equal(req_to_token, expected)


def test_copy_all_layer_kv_cache_cpu_moves_rows_in_every_buffer():
    bufs = [torch.arange(40, dtype=torch.float32).reshape(10, 4) + 100 * i for i in range(3)]
    before = [b.clone() for b in bufs]
    ptrs = torch.tensor([b.data_ptr() for b in bufs], dtype=torch.int64)
    strides = torch.tensor([b.stride(0) * b.element_size() for b in bufs], dtype=torch.int64)
    stub.copy_all_layer_kv_cache_cpu(ptrs, strides, torch.tensor([7, 1]), torch.tensor([1, 2]))
    for b, old in zip(bufs, before):
        assert torch.equal(b[7], old[1]) and torch.equal(b[1], old[2])  # sources read before any write
        assert torch.equal(b[0], old[0])


def test_unknown_symbols_import_but_fail_loudly():
    fn = stub.some_cuda_only_kernel
    with pytest.raises(NotImplementedError, match="some_cuda_only_kernel"):
        fn()
    with pytest.raises(AttributeError):
        stub.__wrapped__  # noqa: B018 - dunders are not faked


def test_active_in_this_env_and_torchvision_imports():
    """A fresh interpreter of the lean env: stub on sys.path, torchvision importable, no AMX op registered."""
    code = (
        "import sgl_kernel, torch, torchvision, sys;"
        "print(sgl_kernel.__version__);"
        "print(hasattr(torch.ops.sgl_kernel, 'convert_weight_packed'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0.0.0+aurora.cpu.stub", "False"]


def test_can_be_switched_off():
    code = "import importlib.util; print(importlib.util.find_spec('sgl_kernel') is None)"
    env = {"AURORA_CPU_COMPAT": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "True"
