"""``kill -9`` of a running ``aurora-serve batch``, then the same command again: every row exactly once, and the
captions those of a clean run (greedy). SIGTERM: the run stops taking rows, finishes those in flight, exits
non-zero, and the same command finishes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aurora_serve import Captioner
from aurora_serve.batch.outputs import part_files, read_rows
from tests.conftest import REPO
from tests.support.clips import make_video

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]  # two engine starts in subprocesses
FLAGS = ["--device", "cpu", "--num-frames", "2", "--token-kept-ratio", "0.5", "--max-tokens", "6",
         "--max-in-flight", "2", "--chunk-rows", "1", "--chunk-seconds", "0.2", "--log-every", "1"]


def batch(args: list[str], log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_") or k == "AURORA_CPU_COMPAT"}
    return subprocess.Popen([sys.executable, "-m", "aurora_serve", "batch", *args], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def summary_in(log) -> dict:
    """The run's JSON summary: its last stdout line (the log also holds stderr, which may come after it)."""
    return json.loads([line for line in log.read_text().splitlines() if line.startswith("{")][-1])


def clip_dir(tmp_path, seed: int):
    """Eight small clips and the batch arguments that caption them into ``captions.jsonl``."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(8):
        make_video(clips / f"v{i:02d}.mp4", frames=12 + 2 * i, w=64, h=48, seed=seed + i)
    return clips, tmp_path / "captions.jsonl"


def start_until_written(args: list[str], log, log_path, out) -> subprocess.Popen:
    """A batch run, returned once OUTPUT holds two chunks (some rows written, others in flight or not started)."""
    run = batch(args, log)
    deadline = time.monotonic() + 600
    while len(part_files(out)) < 2:
        assert run.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "no output after 10 min"
        time.sleep(0.2)
    return run


def test_kill_9_then_rerun_writes_every_row_once_with_clean_captions(engine, tiny_xtuner, tmp_path):
    clips, out = clip_dir(tmp_path, seed=60)
    args = [str(clips), "-o", str(out), "--model-path", str(tiny_xtuner), *FLAGS]
    log_path = tmp_path / "first.log"
    with open(log_path, "wb") as log:
        first = start_until_written(args, log, log_path, out)  # killed mid-run
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    written_before = len(list(read_rows(out)))
    assert 0 < written_before < 8, "the kill must land mid-run"

    with open(tmp_path / "second.log", "wb") as log:
        second = batch(args, log)
        assert second.wait(600) == 0, (tmp_path / "second.log").read_text()[-3000:]
    summary = summary_in(tmp_path / "second.log")
    assert summary["skipped_done"] == written_before and summary["rows"] == 8 - written_before

    rows = list(read_rows(out))
    assert sorted(r["path"] for r in rows) == [f"v{i:02d}.mp4" for i in range(8)]  # each exactly once
    with Captioner(engine=engine, max_tokens=6, num_frames=2, token_kept_ratio=0.5) as captioner:
        clean = {r["path"]: r["caption"] for r in captioner.caption([{"path": str(clips / r["path"])} for r in rows])}
    assert {r["path"]: r["caption"] for r in rows} == {os.path.basename(p): c for p, c in clean.items()}


def test_sigterm_stops_taking_rows_and_a_rerun_finishes_the_rest(tiny_xtuner, tmp_path):
    clips, out = clip_dir(tmp_path, seed=80)
    args = [str(clips), "-o", str(out), "--model-path", str(tiny_xtuner), *FLAGS]
    with open(tmp_path / "first.log", "wb") as log:
        first = start_until_written(args, log, tmp_path / "first.log", out)
        first.send_signal(signal.SIGTERM)  # to the batch process alone, as a scheduler's stop does
        assert first.wait(120) == 128 + signal.SIGTERM, (tmp_path / "first.log").read_text()[-3000:]
    summary = summary_in(tmp_path / "first.log")
    written = len(list(read_rows(out)))
    assert summary["stopped_by"] == "SIGTERM" and summary["rows"] == written < 8  # in-flight rows finished, no more

    with open(tmp_path / "second.log", "wb") as log:
        assert batch(args, log).wait(600) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert sorted(r["path"] for r in read_rows(out)) == [f"v{i:02d}.mp4" for i in range(8)]
