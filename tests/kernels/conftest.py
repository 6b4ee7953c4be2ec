"""Kernel-test fixtures: the Triton module, compiled on a GPU, run by the Triton interpreter without one.

``TRITON_INTERPRET`` is read when ``@triton.jit`` decorates a function, i.e. when the kernel module is
imported. It is set for that one import only and then restored, so it cannot leak into other test
directories or into subprocesses (e.g. an SGLang engine started by another test).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

import pytest
import torch

_MODULE = "aurora_serve.kernels.tome"


def _import_interpreted() -> ModuleType:
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        if _MODULE in sys.modules:  # imported compiled earlier: re-decorate (only the interpreter runs on CPU)
            return importlib.reload(sys.modules[_MODULE])
        return importlib.import_module(_MODULE)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


@pytest.fixture(scope="session")
def tome_kernels() -> tuple[ModuleType, torch.device]:
    """``(aurora_serve.kernels.tome, device)``: CUDA when present, else CPU under the interpreter."""
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        return importlib.import_module(_MODULE), torch.device("cuda")
    return _import_interpreted(), torch.device("cpu")
