"""What every benchmark JSON records about where it ran: the commit (and whether the measured code had
uncommitted changes) and the machine. Shared by the benchmark scripts, which run as ``python benchmarks/x.py``."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    """``git args…`` in the repo; None where git is not installed."""
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None


def git_state(*paths: str) -> dict:
    """``{"git_commit", "git_dirty"}``; dirty means uncommitted changes under ``paths``."""
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--", *paths))}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where it exists (platform.processor() is often empty on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine(load_average: bool = True) -> dict:
    """Platform, CPU, core count and affinity (and the load average: other work moves CPU numbers)."""
    out = {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}
    if load_average:
        out["load_average"] = os.getloadavg()
    return out
