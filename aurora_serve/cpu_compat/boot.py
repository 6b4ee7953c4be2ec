"""Start-up hook run from ``aurora_cpu_compat.pth`` in the lean CPU environment (see package docs).

Kept cheap: it must not import torch (every Python process of the venv runs it). It puts the
``sgl_kernel`` stub on ``sys.path`` only when no real ``sgl_kernel`` is installed, and installs the lazy
torchvision hook, which itself checks ``torch.version.cuda`` when torchvision is first imported.
"""

from __future__ import annotations

import importlib.util
import os
import sys

STUB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shadow")


def activate() -> None:
    if os.environ.get("AURORA_CPU_COMPAT", "1") == "0":
        return
    if importlib.util.find_spec("sgl_kernel") is None and STUB_DIR not in sys.path:
        sys.path.insert(0, STUB_DIR)
    from aurora_cpu_compat.torchvision_hook import install

    install()
