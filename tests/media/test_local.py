"""Tests for aurora_serve.media.local: base64 data: URLs and file:// under the allowed directory."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from aurora_serve.errors import InvalidRequestError, MediaFetchError, MediaTooLargeError
from aurora_serve.media import local as local_mod
from aurora_serve.media.fetch import FetchLimits, fetch_media


def fetch(url, limits=FetchLimits()) -> bytes:
    return asyncio.run(fetch_media(url, limits))


# ---------------------------------------------------------------------------------------------- data:
def test_data_url_roundtrip():
    payload = os.urandom(1000)
    assert fetch("data:video/mp4;base64," + base64.b64encode(payload).decode()) == payload
    assert fetch("data:;base64," + base64.b64encode(b"x").decode()) == b"x"


@pytest.mark.parametrize(
    "url, error, match",
    [
        ("data:video/mp4,rawbytes", InvalidRequestError, "base64"),
        ("data:video/mp4;base64", InvalidRequestError, "base64"),
        ("data:video/mp4;base64,@@@not base64@@@", InvalidRequestError, "not valid base64"),
        ("data:video/mp4;base64,QUJ", InvalidRequestError, "not valid base64"),
        ("data:video/mp4;base64,", MediaFetchError, "empty"),
    ],
)
def test_data_url_invalid(url, error, match):
    with pytest.raises(error, match=match):
        fetch(url)


def test_data_url_size_checked_before_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("decoded an over-limit payload")

    monkeypatch.setattr(local_mod.base64, "b64decode", never)
    with pytest.raises(MediaTooLargeError) as info:
        fetch("data:video/mp4;base64," + "A" * 2000, FetchLimits(max_data_url_bytes=1000))
    assert info.value.status == 413


# ---------------------------------------------------------------------------------------------- file://
@pytest.fixture
def media_root(tmp_path):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "clip.mp4").write_bytes(b"video bytes")
    (root / "sub" / "a b.mp4").write_bytes(b"spaced")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "escape.mp4").symlink_to(tmp_path / "secret.txt")
    (root / "inside-link.mp4").symlink_to(root / "clip.mp4")
    return root


def test_file_url_refused_by_default(media_root):
    with pytest.raises(InvalidRequestError, match="file:// media URLs are disabled"):
        fetch(f"file://{media_root}/clip.mp4", FetchLimits())


def test_file_url_allowed(media_root):
    limits = FetchLimits(allowed_local_media_path=str(media_root))
    assert fetch(f"file://{media_root}/clip.mp4", limits) == b"video bytes"
    assert fetch(f"file://localhost{media_root}/sub/a%20b.mp4", limits) == b"spaced"
    assert fetch(f"file://{media_root}/inside-link.mp4", limits) == b"video bytes"
    assert fetch(f"file://{media_root}/sub/../clip.mp4", limits) == b"video bytes"


@pytest.mark.parametrize(
    "path", ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/escape.mp4", "/../media-other/x"]
)
def test_file_url_escapes_refused(media_root, path):
    with pytest.raises(InvalidRequestError, match="outside the directory"):
        fetch(f"file://{media_root}{path}", FetchLimits(allowed_local_media_path=str(media_root)))


def test_file_url_errors(media_root):
    limits = FetchLimits(allowed_local_media_path=str(media_root), max_bytes=5)
    with pytest.raises(MediaFetchError, match="could not be opened"):
        fetch(f"file://{media_root}/missing.mp4", limits)
    with pytest.raises(MediaFetchError, match="regular file"):
        fetch(f"file://{media_root}/sub", limits)
    with pytest.raises(MediaTooLargeError):
        fetch(f"file://{media_root}/clip.mp4", limits)
    with pytest.raises(InvalidRequestError, match="absolute local path"):
        fetch(f"file://otherhost{media_root}/clip.mp4", limits)
    os.mkfifo(media_root / "pipe")  # must not block waiting for a writer
    with pytest.raises(MediaFetchError, match="regular file"):
        fetch(f"file://{media_root}/pipe", limits)
