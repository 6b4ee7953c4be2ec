"""One media item of a generation request, the one shape it has from the front end to the vision tower.

The front end builds it (defaults applied, options checked) from a request's parts; the engine seam builds it
from an engine caller's dict; the processor reads it, and the SGLang item carries it (its bytes dropped) to
the model. Torch-free and SGLang-free, so every layer can import it.

``MediaPolicy`` holds the server's defaults and limits for the per-item options. Every default for those
options is written here, once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Mapping

from aurora_serve.errors import InvalidRequestError, MediaError
from aurora_serve.model.token_count import validate_ratio

KINDS = ("image", "video")


def check_ratio(value: Any, param: str = "token_kept_ratio") -> float:
    """ρ as a float when ``0 < ρ <= 1``, else a 400 naming ``param`` (settings and every item use this)."""
    try:
        return validate_ratio(value)
    except (TypeError, ValueError) as e:
        raise InvalidRequestError(str(e), param=param) from None


def check_frames(value: Any, max_frames: int, param: str = "num_frames") -> int:
    """A frame count as an int in ``[1, max_frames]`` (the one check of a frame count)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= max_frames:
        name = param.rsplit(".", 1)[-1]
        raise InvalidRequestError(f"{name} must be an integer in [1, {max_frames}], got {value!r}", param=param)
    return value


def check_seconds(value: Any, param: str, *, positive: bool = False) -> float:
    """A finite number of seconds (or frames per second), ``>= 0`` (``> 0`` when ``positive``)."""
    name = param.rsplit(".", 1)[-1]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        raise InvalidRequestError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {value!r}",
                                  param=param)
    return float(value)


@dataclass(frozen=True)
class Sampling:
    """How a video's frames are chosen (the rule: ``media.sampling``). Exactly one of ``num_frames`` / ``fps``
    is set; ``max_frames`` caps an fps count; ``start`` / ``end`` are the window in seconds."""

    num_frames: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    start: float | None = None
    end: float | None = None

    @property
    def plain(self) -> bool:
        """Upstream's sampler exactly: a frame count, no window, no rate."""
        return self.fps is None and self.start is None and self.end is None

    @property
    def most_frames(self) -> int:
        """The most frames this can keep (the count, or the fps cap)."""
        return self.num_frames if self.num_frames is not None else self.max_frames

    def describe(self) -> str:
        """The rule as a request would write it (for messages)."""
        names = ("num_frames", "start", "end") if self.num_frames is not None else ("fps", "max_frames", "start", "end")
        return ", ".join(f"{n}={getattr(self, n):g}" for n in names if getattr(self, n) is not None)

    def identity(self) -> str:
        """What the sample depends on, for cache keys: same string, same frames."""
        rule = f"n{self.num_frames}" if self.num_frames is not None else f"fps{self.fps!r}max{self.max_frames}"
        return rule if self.start is None and self.end is None else f"{rule}@{self.start!r}-{self.end!r}"


IMAGE_SAMPLING = Sampling(num_frames=1)


@dataclass(frozen=True)
class MediaItem:
    """An image or a video, and how to turn it into visual tokens.

    ``data`` is the media's bytes or a local file path; None for media the processor has cached under
    ``media_id`` (a caller's uuid, within ``media_scope``, the front end's namespace for that caller), and
    on the copy the SGLang item carries. ``kind`` None: not known until the bytes are here (``with_data``).
    """

    kind: str | None
    data: bytes | str | None
    token_kept_ratio: float
    sampling: Sampling  # which frames; an image's is one frame
    media_id: str | None = None
    media_scope: str = ""

    def with_data(self, data: bytes | str) -> "MediaItem":
        """This item holding ``data``; a kind left open is decided from the bytes (an image has one frame)."""
        if self.kind is not None:
            return replace(self, data=data)
        from aurora_serve.media.image import sniff_kind

        kind = sniff_kind(data)
        return replace(self, kind=kind, data=data, sampling=IMAGE_SAMPLING if kind == "image" else self.sampling)

    def without_data(self) -> "MediaItem":
        return replace(self, data=None)


@dataclass(frozen=True)
class MediaPolicy:
    """The server's defaults and limits for per-item options; builds every ``MediaItem``."""

    default_token_kept_ratio: float = 0.8  # upstream inference.py
    default_num_frames: int = 8  # upstream inference.py's num_frm
    max_frames: int = 64

    def item(self, kind: str | None, data: bytes | str | None = None, *, token_kept_ratio: Any = None,
             num_frames: Any = None, fps: Any = None, max_frames: Any = None, start: Any = None, end: Any = None,
             media_id: Any = None, media_scope: str = "", param: Mapping[str, str] | None = None) -> MediaItem:
        """A checked item with defaults applied. ``param``: where each option sits in the request, for errors
        (``{"fps": "media_io_kwargs.video.fps", …}``, as ``api.options.Options.places``); an option it leaves
        out is named bare."""
        places = param or {}
        at = lambda name: places.get(name, name)  # noqa: E731
        if kind not in (*KINDS, None):
            raise InvalidRequestError(f"unknown media kind {kind!r}; expected 'image' or 'video'")
        ratio = check_ratio(self.default_token_kept_ratio if token_kept_ratio is None else token_kept_ratio,
                            at("token_kept_ratio"))
        sampling = self.sampling(num_frames, fps, max_frames, start, end, at)
        if media_id is not None and (not isinstance(media_id, str) or not media_id):
            raise InvalidRequestError(f"media_id must be a non-empty string, got {media_id!r}", param=at("media_id"))
        if not isinstance(media_scope, str) or "/" in media_scope:
            raise InvalidRequestError("media_scope must be a string without '/'", param=at("media_scope"))
        return MediaItem(kind, data, ratio, IMAGE_SAMPLING if kind == "image" else sampling, media_id, media_scope)

    def sampling(self, num_frames: Any, fps: Any, max_frames: Any, start: Any, end: Any,
                 at: Callable[[str], str] = lambda name: name) -> Sampling:
        """The checked rule: ``num_frames`` wins over ``fps``; neither given → the default frame count, which
        ``max_frames`` caps (a cap alone, as SGLang's ``video_url.max_frames``, is never silently ignored)."""
        if fps is not None:
            fps = check_seconds(fps, at("fps"), positive=True)
        if max_frames is not None:
            max_frames = check_frames(max_frames, self.max_frames, at("max_frames"))
        if start is not None:
            start = check_seconds(start, at("start"))
        if end is not None:
            end = check_seconds(end, at("end"), positive=True)
            if end <= (start or 0.0):
                raise InvalidRequestError(f"end ({end:g} s) must be after start ({start or 0:g} s)", param=at("end"))
        if num_frames is None and fps is None:
            return Sampling(num_frames=min(self.default_num_frames, max_frames or self.default_num_frames),
                            start=start, end=end)
        if num_frames is not None:
            num_frames = check_frames(num_frames, self.max_frames, at("num_frames"))
            return Sampling(num_frames=num_frames, start=start, end=end)
        return Sampling(fps=fps, max_frames=max_frames or self.max_frames, start=start, end=end)

    def parse(self, kind: str, value: Any) -> MediaItem:
        """An engine caller's item: a ``MediaItem``, bytes, a local path, a ``data:`` URL, or a dict
        ``{"data"|"url": …, "token_kept_ratio": …, "num_frames" | "fps" + "max_frames": …, "start": …, "end": …,
        "media_id": …, "media_scope": …}``."""
        if isinstance(value, MediaItem):
            return value
        options: dict[str, Any] = {}
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"data", "url", *ITEM_OPTIONS})
            if unknown:
                raise InvalidRequestError(f"unknown {kind} item key(s): {', '.join(unknown)}", param=f"{kind}_data")
            options = {k: value[k] for k in ITEM_OPTIONS if k in value}
            value = value.get("data", value.get("url"))
        if value is None and options.get("media_id") is None:
            raise InvalidRequestError(f"{kind} item has no data or url", param=f"{kind}_data")
        return self.item(kind, None if value is None else local_source(value), **options)


SAMPLING_OPTIONS = tuple(f.name for f in fields(Sampling))  # one name per field, wherever a request gives them
ITEM_OPTIONS = ("token_kept_ratio", *SAMPLING_OPTIONS, "media_id", "media_scope")


def local_source(source: Any) -> bytes | str:
    """An engine caller's media: bytes and local paths pass; ``data:`` URLs are decoded; remote URLs refused."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidRequestError(f"unsupported media item type {type(source).__name__}")
    source = os.fspath(source)
    if source.startswith("data:"):
        from aurora_serve.media.local import decode_data_url

        return decode_data_url(source)
    if source.startswith("file://"):
        source = source[len("file://"):]
    if "://" in source:
        raise InvalidRequestError(
            "remote media URLs are fetched by the aurora-serve front end; pass bytes, a data: URL or a local path"
        )
    if not os.path.isfile(source):
        raise MediaError(f"media file not found: {source}")
    return source
