"""End-to-end fixtures: real ``aurora-serve serve`` processes (real SGLang engine on CPU, tiny model).

One main server is shared by the whole session (start-up costs ~20-40 s on 2 cores); modules that need
other flags start their own. Servers bind a free loopback port; every test talks to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest

from tests.conftest import REPO, SHARED_MEDIA
from tests.mediagen import make_image, make_video

API_KEY = "sk-aurora-test-1"
OTHER_KEY = "sk-aurora-test-2"
MAX_MEDIA_MB = 1
OURS = ("AURORA_ENV_CACHE", "AURORA_CPU_COMPAT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m aurora_serve serve …`` as a child process, with its log in a file."""

    def __init__(self, args: list[str], log_path: Path):
        self.args, self.log_path = args, log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("AURORA_") and k not in OURS) and k != "PROMETHEUS_MULTIPROC_DIR"}
        cmd = [sys.executable, "-m", "aurora_serve", "serve", "--device", "cpu", "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "info", *args]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, timeout: float = 300) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def data_url(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def zero_frame_mp4() -> bytes:
    """An MP4 whose video stream holds no frames (header and track, no samples)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # write the header; no frame is ever encoded
    return buf.getvalue()


def huge_png_header() -> bytes:
    """A valid 1×1 PNG whose header claims 60000×60000 pixels (a decompression bomb)."""
    import struct
    import zlib

    png = make_image(None, w=1, h=1, fmt="PNG")
    ihdr_at = png.index(b"IHDR")
    body = bytearray(png[ihdr_at:ihdr_at + 17])
    body[4:12] = struct.pack(">II", 60000, 60000)
    crc = struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
    return png[:ihdr_at] + bytes(body) + crc + png[ihdr_at + 21:]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """The server's --allowed-local-media-path, with small generated clips (and the shared sample, if any)."""
    root = tmp_path_factory.mktemp("media")
    make_video(root / "clip.mp4", frames=12, w=64, h=48, seed=1)
    make_video(root / "short.mp4", frames=3, w=64, h=48, seed=2)
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
    """The shared server: API keys, file:// under media_dir, 1 MiB media cap, SGLang metrics on."""
    log = tmp_path_factory.mktemp("logs") / "server.log"
    proc = ServerProcess([
        "--allowed-local-media-path", str(media_dir), "--max-frames", "16", "--max-media-mb", str(MAX_MEDIA_MB),
        "--max-media-per-request", "3", "--api-key", API_KEY, OTHER_KEY, "--enable-sglang-metrics",
        "--default-num-frames", "4", "--default-max-tokens", "16",
    ], log)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def http(server) -> httpx.Client:
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def openai_client(server):
    import openai

    return openai.OpenAI(base_url=server.base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def metric_values(text: str, name: str) -> list[float]:
    """All sample values of metric ``name`` (any labels) in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            out.append(float(line.rsplit(" ", 1)[1]))
    return out


class MediaHost:
    """A loopback HTTP server that serves clips, redirects in a loop, and records every request it gets."""

    def __init__(self, files: dict[str, bytes]):
        import http.server
        import threading

        host = self
        self.hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                host.hits.append(self.path)
                if self.path.startswith("/loop-"):
                    nxt = "/loop-b" if self.path == "/loop-a" else "/loop-a"
                    self.send_response(302)
                    self.send_header("Location", nxt)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def media_host(media_dir):
    host = MediaHost({"/clip.mp4": (media_dir / "clip.mp4").read_bytes()})
    yield host
    host.close()
