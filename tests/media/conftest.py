"""Fixtures shared by the media decoding tests."""

from __future__ import annotations

import pytest

from tests.support.clips import encode


@pytest.fixture(scope="module")
def clip() -> bytes:
    """100 frames, GOP 48 (longer than the 8-frame stride of 14), B-frames."""
    return encode(100, gop=48, bframes=3)
