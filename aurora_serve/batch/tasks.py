"""An input row → a ``Task`` (what to caption, with which options, under which id); a video → its windows.

Pure functions, no I/O. The rules:

- Options: a row's own ``token_kept_ratio`` / ``num_frames`` / ``fps`` / ``max_frames`` / ``start`` / ``end`` /
  ``prompt`` win over the command's. A row that names a frame rule (``num_frames`` or ``fps``) replaces the
  command's rule whole, so ``--num-frames 8`` never overrides a row's ``fps``. Table cells may be text (CSV):
  ``"8"`` and ``8`` are the same option; ``""`` and null are "not given". A value that is not a number makes that
  row an error row, never the end of the run.
- Ids: the row's ``id`` when it has one, else a stable hash of the source as written (a directory's relative
  path, a table's cell), the prompt and the effective options, so the same row under the same command gets the
  same id on every run and machine. A window's id is its row's id + ``@start-end`` (milliseconds).
- Shards: a row belongs to shard ``i`` of ``n`` when the hash of its id is ``i`` mod ``n``; the windows of a
  video stay together with their row.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from aurora_serve.errors import AuroraError, InvalidRequestError

OPTION_COLUMNS = ("token_kept_ratio", "num_frames", "fps", "max_frames", "start", "end")
ROW_COLUMNS = ("id", "prompt", *OPTION_COLUMNS)  # per-row columns that override the command's options
_INTEGER_OPTIONS = ("num_frames", "max_frames")


@dataclass(frozen=True)
class Defaults:
    """The command's options, applied to rows that do not give their own (None: the engine's default)."""

    prompt: str | None = None  # None: "Describe the video/image in detail." by kind
    token_kept_ratio: float | None = None
    num_frames: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    window_seconds: float | None = None


@dataclass(frozen=True)
class Task:
    """One output row to produce.

    ``source``: where the media is read from (an absolute path or a URL). ``options``: ``MediaPolicy.item``'s
    keywords (None where neither the row nor the command set one). ``row``: the input row's own columns, carried
    to the output. ``error``: a problem found while preparing; the row is written as that error and not run.
    ``window``: (start, end) seconds of a dense-caption window, or None for the whole item.
    """

    id: str
    source: str
    prompt: str | None
    options: dict[str, Any]
    row: dict[str, Any] = field(default_factory=dict)
    error: AuroraError | None = None
    window: tuple[float, float] | None = None
    data: bytes | None = field(default=None, repr=False)  # in-memory media (a Captioner item given as bytes)


def parse_option(name: str, value: Any) -> Any:
    """A cell as the option's type: ``""``/None → None; text → a number; a bad value → a 400 naming it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):  # a null that went through a float column
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise InvalidRequestError(f"{name} must be a number, got {value!r}", param=name) from None
    if name in _INTEGER_OPTIONS and isinstance(number, float) and number.is_integer():
        return int(number)
    if name not in _INTEGER_OPTIONS and isinstance(number, int) and not isinstance(number, bool):
        return float(number)
    return number  # anything else is checked (and refused) by MediaPolicy.item, as for every caller


def effective_options(given: dict[str, Any], defaults: Defaults) -> dict[str, Any]:
    """The row's options over the command's; a row's frame rule replaces the command's whole."""
    out = {name: given.get(name) for name in OPTION_COLUMNS}
    if out["token_kept_ratio"] is None:
        out["token_kept_ratio"] = defaults.token_kept_ratio
    if out["num_frames"] is None and out["fps"] is None:
        out["num_frames"], out["fps"] = defaults.num_frames, defaults.fps
    if out["max_frames"] is None and out["num_frames"] is None:  # a cap for a rate, never for a count
        out["max_frames"] = defaults.max_frames
    return out


def stable_id(source: str, prompt: str | None, options: dict[str, Any]) -> str:
    """16 hex digits over the source as written, the prompt and the effective options."""
    key = json.dumps({"source": source, "prompt": prompt, **options}, sort_keys=True, default=str)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def make_task(raw: dict[str, Any], written: str, source: str, defaults: Defaults,
              carried: Sequence[str] = ()) -> Task:
    """The task for one input row. ``written``: the source as the input writes it (hashed into the id);
    ``source``: where to read it; ``carried``: the row's columns to copy to the output."""
    given, error = {}, None
    for name in OPTION_COLUMNS:
        try:
            given[name] = parse_option(name, raw.get(name))
        except InvalidRequestError as e:  # the row is written as this error; the column stays typed (null)
            given[name], error = None, error or e
    prompt = raw.get("prompt")
    prompt = prompt if isinstance(prompt, str) and prompt.strip() else defaults.prompt
    options = effective_options(given, defaults)
    given_id = raw.get("id")
    has_id = given_id is not None and str(given_id).strip() != "" and not (
        isinstance(given_id, float) and math.isnan(given_id))
    task_id = str(given_id).strip() if has_id else stable_id(written, prompt, options)
    return Task(task_id, source, prompt, options, {c: raw.get(c) for c in carried}, error)


def resolve_source(written: str, base: Path) -> str:
    """Where a source as written is read from: URLs as they are (``file://`` → its path), a relative path under
    ``base`` (the directory of the list that names it)."""
    if written.startswith("file://"):
        return written[len("file://"):]
    if "://" in written or written.startswith("data:"):
        return written
    return written if os.path.isabs(written) else str(base / written)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with ``0 <= i < n``."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n


def in_shard(task_id: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    digest = hashlib.blake2b(task_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard[1] == shard[0]


def plan_windows(times: Sequence[float], duration: float, seconds: float, start: float | None = None,
                 end: float | None = None) -> list[tuple[float, float]]:
    """Consecutive ``seconds``-long windows over ``[start, end)`` of a video whose frames are shown at ``times``
    (ascending, the sampler's timeline), the last one cut at the end; windows that hold no frame are left out
    (the sampler would refuse them). ``plan_windows([0, .5, 1, 1.5], 2.0, 1.0) == [(0, 1), (1, 2)]``."""
    if seconds <= 0:
        raise ValueError(f"window seconds must be > 0, got {seconds}")
    lo = start or 0.0
    hi = duration if end is None else min(end, duration)
    if lo >= hi:
        raise InvalidRequestError(f"the window starts at {lo:g} s, at or past the end of the video (its duration "
                                  f"is {duration:.3f} s)", param="start", code="window_past_end")
    windows = []
    for k in range(math.ceil((hi - lo) / seconds)):
        s, e = lo + k * seconds, min(lo + (k + 1) * seconds, hi)
        first = bisect.bisect_left(times, s)
        if first < len(times) and times[first] < e:
            windows.append((s, e))
    return windows


def window_task(task: Task, start: float, end: float) -> Task:
    """The task for one window of a video task: its own id, the window as start/end."""
    return replace(task, id=f"{task.id}@{start:.3f}-{end:.3f}", window=(start, end),
                   options={**task.options, "start": start, "end": end})
