"""Kernel-test fixtures: the Triton module, compiled on a GPU, run by the Triton interpreter without one.

``TRITON_INTERPRET`` only works if it is set before triton is first imported (triton's own library
functions are decorated then, and more of them lazily at the first launch), and it changes triton's global
state for the whole process. So this directory never sets it in-process: on a CPU-only machine the kernel
tests skip here and ``test_interpreter_suite_in_subprocess`` reruns this file in a child pytest with the
variable set (where the fixture below finds mode ``interpreter``). Nothing leaks into other test
directories or the subprocesses they start. To see the individual results directly on CPU:

    TRITON_INTERPRET=1 .venv/bin/python -m pytest -q tests/kernels
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

import pytest
import torch

_MODULE = "aurora_serve.kernels.tome"


def _interpreting() -> bool:
    """True if this process runs triton's interpreter (variable set before triton was imported)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return False
    if "triton" not in sys.modules:
        return True
    import triton.language.standard as tl_standard
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl_standard.sum, InterpretedFunction)


@pytest.fixture(scope="session")
def kernel_mode() -> str:
    """``cuda``, ``interpreter`` (CPU, this process), ``subprocess`` (CPU, rerun in a child) or ``absent``."""
    if importlib.util.find_spec("triton") is None:
        return "absent"
    if torch.cuda.is_available():
        return "cuda"
    return "interpreter" if _interpreting() else "subprocess"


@pytest.fixture(scope="session")
def tome_kernels(kernel_mode) -> tuple[ModuleType, torch.device]:
    """``(aurora_serve.kernels.tome, device)``: CUDA when present, else CPU under the interpreter."""
    if kernel_mode == "absent":
        pytest.skip("triton is not installed")
    if kernel_mode == "subprocess":
        pytest.skip("no GPU: runs under the Triton interpreter in test_interpreter_suite_in_subprocess")
    return importlib.import_module(_MODULE), torch.device("cuda" if kernel_mode == "cuda" else "cpu")
