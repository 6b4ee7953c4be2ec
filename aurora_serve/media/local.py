"""Media that needs no network: base64 ``data:`` URLs, and ``file://`` URLs under the one allowed directory."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from urllib.parse import unquote, urlsplit

import anyio

from aurora_serve.errors import InvalidRequestError, MediaFetchError, MediaTooLargeError

_MiB = 1024 * 1024


def decode_data_url(url: str, max_bytes: int | None = None, max_encoded: int | None = None) -> bytes:
    """A base64 ``data:`` URL's bytes; the payload size is checked before anything is decoded.

    ``max_bytes`` caps the decoded media, ``max_encoded`` the payload as sent (None: no cap, for in-process
    callers, who already hold the string)."""
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise InvalidRequestError("data: URLs must be base64-encoded (data:<type>;base64,<payload>)")
    if max_encoded is not None and len(payload) > max_encoded:  # before decoding: never allocate the copy
        raise MediaTooLargeError(f"data: URL payload is {len(payload)} bytes; the limit is {max_encoded}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("data: URL payload is not valid base64") from None
    if not data:
        raise MediaFetchError("data: URL payload is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise MediaTooLargeError(f"media is {len(data)} bytes; the limit is {max_bytes}")
    return data


async def read_file_url(url: str, root: str | None, max_bytes: int) -> bytes:
    """The bytes of a ``file://`` URL that names a regular file under ``root`` (None: file:// is refused)."""
    if root is None:
        raise InvalidRequestError("file:// media URLs are disabled on this server; send an http(s) or base64 data: URL")
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/") or "\x00" in path:
        raise InvalidRequestError("file:// media URL must be an absolute local path (file:///path/to/video.mp4)")
    root = os.path.realpath(root)
    real = os.path.realpath(path)  # symlinks and ".." resolved before the containment check
    if os.path.commonpath([root, real]) != root:
        raise InvalidRequestError("file:// media URL is outside the directory this server may read from")
    return await anyio.to_thread.run_sync(_read_regular_file, real, max_bytes)


def _read_regular_file(path: str, max_bytes: int) -> bytes:
    try:  # O_NONBLOCK: opening a FIFO must not hang; fstat on the open fd closes the stat/open race
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MediaFetchError(f"file:// media could not be opened: {exc.strerror or 'error'}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaFetchError("file:// media URL does not name a regular file")
        if info.st_size > max_bytes:
            raise MediaTooLargeError(f"media is {info.st_size} bytes; the limit is {max_bytes}")
        data = bytearray()
        while chunk := os.read(fd, min(8 * _MiB, max_bytes + 1 - len(data))):  # the file may have grown
            data += chunk
            if len(data) > max_bytes:
                raise MediaTooLargeError(f"media is larger than the limit of {max_bytes} bytes")
    finally:
        os.close(fd)
    return bytes(data)
