"""What every benchmark JSON records about where it ran: the command, the commit (and whether the measured code
had uncommitted changes) and the machine. Shared by the benchmarks, which run as ``python -m benchmarks.x``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def relative(path: str) -> str:
    """``path`` relative to the repository when it is inside it (results do not record one machine's layout)."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return path


def command(python: str = Path(sys.executable).name) -> str:
    """The command line that ran this process. Under ``python -m benchmarks.x`` sys.argv[0] is the module's file,
    which does not run as a script (the benchmarks import each other as a package): name the module instead."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    head = ["-m", spec.name.removesuffix(".__main__")] if spec is not None else sys.argv[:1]
    return " ".join([python, *head, *sys.argv[1:]])


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
