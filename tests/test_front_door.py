"""The README's two commands, run as a user would: `make serve` serves, `make test` runs the suite's runner.

`make serve` is started for real (env already built → reused from the cache), answers a caption request
over HTTP, and shuts down cleanly on SIGTERM. `make test` is run on a small selection (the full suite would
recurse into this file). On a machine whose pip has no local `torch==…+cpu` wheel, `make env` takes torch from
PyTorch's CPU index: scripts/cpu_torch.sh's decision, checked with a stub pip (nothing is downloaded).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import psutil
import pytest

from tests.conftest import REPO
from tests.support.clips import make_video
from tests.support.server import free_port


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


@pytest.mark.engine
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


@pytest.mark.engine
def test_make_test_runs_the_suite_runner():
    # The selection goes on make's command line and the outer make's MAKEFLAGS are dropped: a PYTEST_ARGS given
    # to an outer `make test` would otherwise reach this nested make and rerun the whole suite (recursively).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTEST_ARGS")}
    cmd = ["make", "-s", "test", "PYTEST_ARGS=-k test_published_table -p no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "12 passed" in proc.stdout


# --- where make env gets torch's +cpu build ------------------------------------------------------------------

LOCK = REPO / "requirements-cpu.lock.txt"
TORCH_PIN = re.search(r"^torch==\S+\+cpu$", LOCK.read_text(), re.M).group(0)
# A pip that records each call and finds the pin only when FOUND_LOCALLY=1 (its dry runs fail otherwise).
STUB_PIP = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$PIP_CALLS"
case " $* " in *" --dry-run "*) [ "$FOUND_LOCALLY" = 1 ] ;; *) exit 0 ;; esac
"""


def cpu_torch(tmp_path, found_locally: bool, **env) -> tuple[subprocess.CompletedProcess, list[str]]:
    tmp_path.mkdir(exist_ok=True)
    pip = tmp_path / "pip"
    pip.write_text(STUB_PIP)
    pip.chmod(0o755)
    calls = tmp_path / "calls"
    base = {k: v for k, v in os.environ.items() if k != "AURORA_TORCH_INDEX_URL"}
    proc = subprocess.run(["bash", "scripts/cpu_torch.sh", str(pip), str(LOCK)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**base, "PIP_CALLS": str(calls),
                                                      "FOUND_LOCALLY": "1" if found_locally else "0", **env})
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_make_env_installs_nothing_extra_when_pip_finds_the_cpu_torch(tmp_path):
    proc, calls = cpu_torch(tmp_path, found_locally=True)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 1 and "--dry-run" in calls[0].split() and calls[0].endswith(TORCH_PIN)
    assert "index" not in calls[0]  # this machine's own configuration only: the fallback index is never asked


def test_make_env_falls_back_to_pytorchs_cpu_index(tmp_path):
    proc, calls = cpu_torch(tmp_path, found_locally=False)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 2 and "--dry-run" in calls[0].split()
    assert calls[1] == f"install -q --no-deps --index-url https://download.pytorch.org/whl/cpu {TORCH_PIN}"
    proc, calls = cpu_torch(tmp_path / "mirror", found_locally=False,
                            AURORA_TORCH_INDEX_URL="https://mirror.invalid/whl/cpu")
    assert proc.returncode == 0 and calls[1].split()[-2:] == ["https://mirror.invalid/whl/cpu", TORCH_PIN]


# make_env.sh's python, as a stub: `-m venv DIR` makes a venv of stubs (this python, the recording pip); `-c`
# answers the two questions make_env.sh asks (version, site-packages); `-` swallows the import smoke test.
STUB_PYTHON = """#!/usr/bin/env bash
case "$1" in
  -m) mkdir -p "$3/bin" "$3/site" && cp "$STUB_PIP" "$3/bin/pip" && cp "$0" "$3/bin/python" ;;
  -c) case "$2" in *sysconfig*) echo "$(dirname "$(dirname "$0")")/site" ;; *) echo 3.11 ;; esac ;;
  -) cat > /dev/null ;;
esac
"""


def test_make_env_takes_torch_from_the_index_before_the_lock_and_reuses_the_build(tmp_path):
    """The whole of make_env.sh on a machine without the wheel, in a copy of what it reads, with stubs for python
    and pip: torch comes from PyTorch's index before the lock is installed, and a second run reuses the build."""
    root = tmp_path / "clone"
    for part in ("scripts", "aurora_serve/cpu_compat"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(LOCK, root / LOCK.name)
    for name, text in (("python", STUB_PYTHON), ("pip", STUB_PIP)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = {**{k: v for k, v in os.environ.items() if k != "AURORA_TORCH_INDEX_URL"}, "PYTHON": str(tmp_path / "python"),
           "STUB_PIP": str(tmp_path / "pip"), "PIP_CALLS": str(tmp_path / "calls"), "FOUND_LOCALLY": "0",
           "AURORA_ENV_CACHE": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        proc = subprocess.run(["bash", "scripts/make_env.sh"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        runs.append([" ".join(c.split()[:6]) for c in (tmp_path / "calls").read_text().splitlines()])
        (tmp_path / "calls").unlink()
    assert runs[0] == [f"install -q --dry-run --no-deps {TORCH_PIN}",
                       "install -q --no-deps --index-url https://download.pytorch.org/whl/cpu " + TORCH_PIN,
                       "install -q --no-deps -r requirements-cpu.lock.txt",
                       "install -q --no-deps --no-build-isolation -e ."]
    assert runs[1] == ["install -q --no-deps --no-build-isolation -e ."]  # the cached build, reused
    assert (root / ".venv").resolve().parent == (tmp_path / "cache").resolve()
