"""What a batch run tells a person: a progress bar on a terminal, a log line every ``log_every`` seconds
otherwise, and a summary at the end (to stderr; stdout stays free for the caller)."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any, TextIO


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """``total``: rows expected (None: unknown, e.g. windows); ``bar``: None = a bar only on a terminal."""

    def __init__(self, total: int | None, stream: TextIO = sys.stderr, log_every: float = 30.0,
                 bar: bool | None = None, clock=time.monotonic, warm_rows: int = 16):
        self.total, self.stream, self.log_every, self.clock = total, stream, log_every, clock
        self.start = self.last_log = clock()
        # The steady rate leaves out start-up and the first wave of requests: rows after the first ``warm_rows``
        # over the time since that row arrived (Ray returns rows a batch at a time: a batch is the wave there).
        self.warm_rows, self._warm_at, self._last_at = warm_rows, None, None
        self.rows = self.errors = self.videos = self.images = self.visual_tokens = self.skipped = 0
        self._bar = None
        if bar if bar is not None else getattr(stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=stream, unit="row", dynamic_ncols=True, smoothing=0.1)

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        self._last_at = self.clock()
        if self.rows == self.warm_rows:
            self._warm_at = self._last_at
        failed = row.get("error") is not None
        self.errors += failed
        self.videos += not failed and row.get("kind") == "video"  # captioned ones: rates count work done
        self.images += not failed and row.get("kind") == "image"
        self.visual_tokens += row.get("visual_tokens") or 0
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(self._rates(), refresh=False)

    def skip(self, count: int) -> None:
        """Rows that need no work (already written, another shard's): they count toward the total."""
        if count:
            self.skipped += count
            if self._bar is not None:
                self._bar.update(count)

    def tick(self) -> None:
        now = self.clock()
        if self._bar is None and now - self.last_log >= self.log_every:
            self.last_log = now
            self.stream.write(f"batch: {self.line()}\n")
            self.stream.flush()

    def elapsed(self) -> float:
        return max(self.clock() - self.start, 1e-9)

    def _rates(self) -> str:
        t = self.elapsed()
        return f"{self.videos / t:.2f} videos/s, {self.visual_tokens / t:.0f} visual tok/s, {self.errors} errors"

    def line(self) -> str:
        done = self.rows + self.skipped
        head = f"{done}/{self.total} rows" if self.total else f"{done} rows"
        eta = ""
        if self.total and self.rows:
            eta = f", ETA {_clock((self.total - done) * self.elapsed() / self.rows)}"
        return f"{head}, {self._rates()}{eta}"

    def close(self, summary: str) -> None:
        if self._bar is not None:
            self._bar.close()
        self.stream.write(summary + "\n")
        self.stream.flush()

    def summary(self) -> dict[str, Any]:
        t = self.elapsed()
        steady = None
        if self._warm_at is not None and self._last_at > self._warm_at:
            steady = round(60 * (self.rows - self.warm_rows) / (self._last_at - self._warm_at), 3)
        return {"rows": self.rows, "errors": self.errors, "videos": self.videos, "images": self.images,
                "visual_tokens": self.visual_tokens, "skipped": self.skipped, "seconds": round(t, 3),
                "rows_per_min": round(60 * self.rows / t, 3), "videos_per_min": round(60 * self.videos / t, 3),
                "steady_rows_per_min": steady}


def summary_of(progress: Progress, skipped, writer, status: int, caught: list[int], fatal: str | None) -> dict[str, Any]:
    """The run's summary (``skipped``: a ``runner.Skipped``, None where not counted; ``writer``: the run's
    ``ChunkWriter``); the line for people is printed too."""
    counts = {"skipped_done": None, "skipped_other_shard": None, "skipped_repeated": None}
    if skipped is not None:
        counts = {"skipped_done": skipped.done, "skipped_other_shard": skipped.other_shard,
                  "skipped_repeated": skipped.repeated}
    summary = {**progress.summary(), **counts, "parts_written": writer.parts, "output": str(writer.path),
               "exit_status": status, "stopped_by": signal.Signals(caught[0]).name if caught else None, "fatal": fatal}
    progress.close(_summary_line(summary))
    return summary


def _summary_line(s: dict[str, Any]) -> str:
    why = f"; stopped by {s['stopped_by']}" if s["stopped_by"] else f"; failed: {s['fatal']}" if s["fatal"] else ""
    skips = "" if s["skipped_done"] is None else (
        f"; skipped {s['skipped_done']} already in the output, {s['skipped_other_shard']} of other shards, "
        f"{s['skipped_repeated']} repeated ids")
    return (f"batch: {s['rows']} rows written ({s['errors']} errors) in {s['seconds']:.1f} s, "
            f"{s['videos_per_min']:.1f} videos/min{skips}; {s['parts_written']} parts added to {s['output']}{why}")
