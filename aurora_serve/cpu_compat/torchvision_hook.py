"""Let the CUDA-only ``torchvision`` wheel import on CPU torch (see package docs, obstacle 1)."""

from __future__ import annotations

import importlib.abc
import sys

# Holds the torch.library.Library object for the life of the process: dropping it would unregister
# the schemas again.
_LIBRARY = []


def define_schemas_if_missing() -> bool:
    """Define ``torchvision::nms``/``qnms`` schemas on CPU torch when the C++ ops are absent.

    Returns True when it defined them. Does nothing on CUDA torch or when the ops already resolve.
    """
    import torch

    if torch.version.cuda is not None:
        return False
    try:
        torch.ops.torchvision.nms  # noqa: B018 - resolving the op is the check
        return False
    except (AttributeError, RuntimeError):
        pass  # not registered: define the stubs below
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.append(lib)
    return True


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Runs :func:`define_schemas_if_missing` once, just before torchvision is first imported."""

    def find_spec(self, name, path, target=None):
        if name != "torchvision":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        define_schemas_if_missing()
        return None  # let the normal finders import torchvision


def install() -> None:
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())
