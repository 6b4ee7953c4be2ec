"""The merge kernels compile for Hopper and Ampere with no register spills, at the launcher's own block sizes.

No GPU needed: Triton compiles for an explicit target and its bundled ptxas reports registers and spills
(benchmarks/kernel_resources.py). This catches what the interpreter cannot: code that only compiled
kernels run, and register pressure that turns into local-memory traffic (the first match kernel spilled
1.6 KB per thread on sm_90).
"""

from __future__ import annotations

import importlib.util

import pytest

SHARED_LIMIT = {90: 227 * 1024, 80: 163 * 1024}  # usable shared memory per block


@pytest.fixture(scope="module")
def kernel_resources(kernel_mode):
    if kernel_mode == "absent":
        pytest.skip("triton is not installed")
    if kernel_mode == "interpreter":
        pytest.skip("the interpreter replaces the kernels; this file runs compiled in the parent process")
    if importlib.util.find_spec("triton.backends.nvidia") is None:
        pytest.skip("this triton has no NVIDIA backend")
    from benchmarks import kernel_resources

    return kernel_resources


@pytest.mark.parametrize("arch", [90, 80])
def test_no_spills_at_auroracap_shapes(kernel_resources, arch):
    dtypes = ["fp16", "bf16", "fp32"] if arch == 90 else ["fp16"]
    rows = kernel_resources.report(arch, tokens=[730, 100], channels=1280, k_max=22, dtypes=dtypes)
    assert {r["kernel"] for r in rows} == {"_match_kernel", "_plan_kernel", "_merge_kernel"}
    for r in rows:
        where = f"{r['kernel']} {r['dtype']} T={r['T']} sm_{arch}: {r}"
        assert r["spill_store_bytes"] == 0 and r["spill_load_bytes"] == 0, where
        assert 0 < r["registers"] <= 255, where
        assert r["shared_bytes"] <= SHARED_LIMIT[arch], where
