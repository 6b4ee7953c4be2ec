"""``aurora-serve serve`` as a benchmark subject: a loopback subprocess, its /metrics, its CPU time."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``aurora-serve serve`` on loopback in a subprocess (its log in a temp file)."""

    def __init__(self, sglang_args: str | None = None, timeout: float = 300.0, extra: list[str] | None = None,
                 tree: Path = REPO):
        """``tree``: the checkout whose code runs (another commit's worktree, for before/after runs)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="aurora-perf-server-", suffix=".log", delete=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_") or k in ("AURORA_CPU_COMPAT",)}
        extra = (["--sglang-args", sglang_args] if sglang_args else []) + list(extra or [])
        # `-m` from this checkout, not the venv's console script: the cached venv is shared by every clone
        # and its editable install points at whichever ran `make env` last
        self.proc = subprocess.Popen([sys.executable, "-m", "aurora_serve", "serve", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--log-level", "warning", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tree)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); log: {self.log.name}")
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"the server was not ready in {timeout:.0f} s; log: {self.log.name}")

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        series = re.findall(r"^(aurora_\S+?(?:_sum|_count)(?:\{[^}]*\})?) (\S+)$", text, re.M)
        return {name: float(value) for name, value in series}

    def gauges(self) -> dict[str, float]:
        """The server's in-flight and queued gauges."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        found = re.findall(r"^(aurora_requests_(?:in_flight|queued)) (\S+)$", text, re.M)
        return {name: float(value) for name, value in found}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of a process and its descendants, by pid."""
    import psutil

    out = {}
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
            except psutil.Error:
                continue
    except psutil.Error:
        pass  # the server exited: what was read so far
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (processes that exited in between are not counted)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def stage_means(before: dict, after: dict) -> dict[str, float | None]:
    """Mean seconds per observation of the server's stage histograms between two scrapes."""
    def mean(prefix):
        sums = [k for k in after if k.startswith(prefix + "_sum")]
        s = sum(after[k] - before.get(k, 0.0) for k in sums)
        n = sum(after[k.replace("_sum", "_count", 1)] - before.get(k.replace("_sum", "_count", 1), 0.0) for k in sums)
        return s / n if n else None

    names = {"fetch": "aurora_media_fetch_seconds", "preprocess": "aurora_media_preprocess_seconds",
             "prefill": "aurora_prefill_seconds", "ttft": "aurora_time_to_first_token_seconds",
             "tpot": "aurora_time_per_output_token_seconds", "e2e": "aurora_e2e_request_latency_seconds"}
    return {k: mean(v) for k, v in names.items()}
