"""A bounded LRU of processed media: a repeated video skips decoding and preprocessing.

Key: the SHA-256 of the media bytes plus everything that changes the pixels (kind, frames requested,
resolution, decoder and its version). The value is the CLIP pixel tensor ``[F, 3, S, S]``; the kept ratio is
not part of the key because it does not change the pixels (it is folded into the item hash later).
Thread-safe: the processor prepares media on a thread pool.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

_CHUNK = 1 << 20


def media_digest(source: bytes | str) -> str:
    """SHA-256 hex of the media bytes (read in chunks for a path)."""
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(source)
    else:
        with open(source, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


class ProcessedMediaCache:
    """LRU bounded by tensor bytes; ``max_bytes == 0`` disables it."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            pixels = self._entries.get(key)
            if pixels is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return pixels

    def put(self, key: str, pixels: torch.Tensor) -> None:
        size = pixels.numel() * pixels.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = pixels
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()

    def __len__(self) -> int:
        return len(self._entries)
