"""End-to-end fixtures: real ``aurora-serve serve`` processes (real SGLang engine on CPU, tiny model).

One main server is shared by the whole session (start-up costs ~20-40 s on 2 cores); modules that need
other flags start their own. Servers bind a free loopback port; every test talks to 127.0.0.1 only.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED_MEDIA
from tests.support.clips import encode, make_image, make_video, zero_frame_mp4
from tests.support.loopback import MediaHost
from tests.support.server import ServerProcess

API_KEY = "sk-aurora-test-1"
OTHER_KEY = "sk-aurora-test-2"
MAX_MEDIA_MB = 1
LIMITS = {"body": 4.0, "idle": 1.5, "header": 2.0}  # limits_server's deadlines, seconds
MAX_FRAMES, FRAME_BUDGET = 16, 40  # per video, per request


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """The server's --allowed-local-media-path, with small generated clips (and the shared sample, if any)."""
    root = tmp_path_factory.mktemp("media")
    make_video(root / "clip.mp4", frames=12, w=64, h=48, seed=1)
    make_video(root / "short.mp4", frames=3, w=64, h=48, seed=2)
    (root / "indexed.mp4").write_bytes(encode(150, gop=30, bframes=2))  # 5.000 s at 30 fps: frame i at i/30 s
    make_image(root / "still.jpg", w=96, h=72, seed=3)
    (root / "not_video.mp4").write_bytes(b"this is not a video at all " * 40)
    full = (root / "clip.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(full[: len(full) // 3])
    (root / "empty_stream.mp4").write_bytes(zero_frame_mp4())
    (root / "big.bin").write_bytes(os.urandom(MAX_MEDIA_MB * 1024 * 1024 + 4096))
    if (SHARED_MEDIA / "xU25MMA2N4aVtYay.mp4").is_file():
        (root / "sample.mp4").write_bytes((SHARED_MEDIA / "xU25MMA2N4aVtYay.mp4").read_bytes())
    return root


@pytest.fixture(scope="session")
def server(media_dir, tmp_path_factory) -> ServerProcess:
    """The shared server: API keys, file:// under media_dir, 1 MiB media cap, 16 frames a video and 40 a
    request, SGLang metrics on."""
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess([
        "--allowed-local-media-path", str(media_dir), "--max-frames", str(MAX_FRAMES), "--max-media-mb",
        str(MAX_MEDIA_MB), "--max-frames-per-request", str(FRAME_BUDGET), "--api-key", API_KEY, OTHER_KEY,
        "--enable-sglang-metrics", "--default-num-frames", "4", "--default-max-tokens", "16",
    ], log) as proc:
        yield proc


@pytest.fixture(scope="session")
def limits_server(tmp_path_factory) -> ServerProcess:
    """A key-less server with small transport limits: one slot, one place in line, short deadlines; media
    hosts on loopback allowed; "aurora.test" among its allowed Host names."""
    log = tmp_path_factory.mktemp("logs") / "limits.log"
    with ServerProcess([
        "--max-concurrency", "1", "--max-queue", "1", "--body-timeout", str(LIMITS["body"]),
        "--body-idle-timeout", str(LIMITS["idle"]), "--header-timeout", str(LIMITS["header"]),
        "--allow-media-hosts", "127.0.0.1/32", "--allowed-hosts", "aurora.test", "--default-max-tokens", "4",
    ], log) as proc:
        yield proc


@pytest.fixture(scope="session")
def http(server) -> httpx.Client:
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def openai_client(server):
    import openai

    return openai.OpenAI(base_url=server.base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def media_host(media_dir):
    host = MediaHost({"/clip.mp4": (media_dir / "clip.mp4").read_bytes()})
    yield host
    host.close()
