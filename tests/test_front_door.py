"""The README's two commands, run as a user would: `make serve` serves, `make test` runs the suite's runner.

`make serve` is started for real (env already built → reused from the cache), answers a caption request
over HTTP, and shuts down cleanly on SIGTERM. `make test` is run on a small selection (the full suite would
recurse into this file).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import psutil
import pytest

from tests.conftest import REPO
from tests.mediagen import make_video

pytestmark = pytest.mark.engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`make serve` exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(1)
    raise AssertionError("server never became ready")


def test_make_serve_serves_the_embedded_model(tmp_path):
    port = free_port()
    env = {**os.environ, "AURORA_PORT": str(port), "AURORA_TINY_MODEL_DIR": str(tmp_path / "tiny")}
    proc = subprocess.Popen(["make", "-s", "serve"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_ready(port, proc)
        video = base64.b64encode(make_video(None, frames=12, seed=50)).decode()
        body = json.dumps({"url": "data:video/mp4;base64," + video, "num_frames": 2, "token_kept_ratio": 0.2,
                           "max_tokens": 4})
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/captions", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())
        assert r.status == 200 and isinstance(out["caption"], str)
    finally:
        # SIGTERM to the server (as Kubernetes or systemd would send it); make passes on its exit status.
        servers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "aurora_serve" in " ".join(c.cmdline())
                   or "aurora-serve" in " ".join(c.cmdline())]
        for child in servers or [psutil.Process(proc.pid)]:
            child.send_signal(signal.SIGTERM)
        try:
            log = proc.communicate(timeout=120)[0]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert servers, "no aurora-serve process under make"
    assert proc.returncode == 0, log[-3000:]
    assert "draining" in log


def test_make_test_runs_the_suite_runner():
    # The selection goes on make's command line and the outer make's MAKEFLAGS are dropped: a PYTEST_ARGS given
    # to an outer `make test` would otherwise reach this nested make and rerun the whole suite (recursively).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTEST_ARGS")}
    cmd = ["make", "-s", "test", "PYTEST_ARGS=-k test_published_table -p no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "12 passed" in proc.stdout
