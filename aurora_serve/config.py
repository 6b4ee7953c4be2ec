"""Typed settings: ``aurora-serve serve`` flags and ``AURORA_*`` variables → one frozen object.

The only module that reads the process environment. Every option has a flag ``--foo-bar`` and a variable
``AURORA_FOO_BAR``; a flag beats the variable, the variable beats the default. List options take a
comma-separated variable (``AURORA_API_KEY=k1,k2``), switches take ``1/true/yes/on`` or ``0/false/no/off``.
An ``AURORA_*`` variable that names no option is an error, so a typo never silently falls back to a
default. Everything below this module receives explicit arguments.

One shape: ``ServerSettings`` contains ``EngineSettings`` (what ``AuroraEngine`` needs, also built by the CLI
and tests), which contains ``ModelRuntime`` (what the model and its processor read, through SGLang's config
override) and ``MediaPolicy`` (per-item defaults and limits). Each default is written once, on its field.
Imports nothing heavy: ``serve --help`` loads neither torch nor PyAV nor the web stack.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from aurora_serve.api.hosts import parse_allowed
from aurora_serve.errors import InvalidRequestError
from aurora_serve.kernels import MERGE_BACKENDS
from aurora_serve.media import VIDEO_BACKENDS
from aurora_serve.media.item import MediaPolicy, check_ratio

ENV_PREFIX = "AURORA_"
# AURORA_* variables read before this process exists (environment build, interpreter boot hook): not ours.
FOREIGN_ENV = ("AURORA_ENV_CACHE", "AURORA_TORCH_INDEX_URL", "AURORA_CPU_COMPAT")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ModelRuntime:
    """What the model and its processor read at run time: sent to them in SGLang's config override."""

    merge_backend: str = "auto"  # token-merge kernel: "auto" (Triton on CUDA) | "triton" | "reference"
    decode_backend: str = "pyav"  # "pyav" | "decord"
    media_cache_mb: int = 512  # processed-media LRU: a repeated video skips decode + preprocessing (0: off)
    # Decode budgets (media.budget). A 64-frame sample of a 30 fps video with key frames every 2 s decodes
    # at most 64 × 60 = 3840 frames; 8192 leaves room for 4 s GOPs, and stops a one-key-frame file early.
    max_decoded_frames: int = 8192  # per item
    decode_timeout: float = 30.0  # seconds per item, from when its decode starts
    max_frame_pixels: int = 40_000_000  # one frame or image: 4K and 8K video, 40 MP photos
    max_request_pixels: int = 1_200_000_000  # a request's frames together: two 64-frame 4K videos
    media_workers: int | None = None  # processes preparing media; None: one per CPU of its affinity (up to 32); 0: threads
    media_worker_memory_mb: int = 4096  # address space per media worker (a runaway decoder fails there)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelRuntime":
        """The override's dict back as the typed object; an unknown key is an error, never ignored."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown aurora runtime setting(s): {', '.join(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs; built from the server settings or by the CLI and tests."""

    model_path: str | None = None  # None → the embedded tiny model (built once into tiny_model_dir)
    tiny_model_dir: str | None = None  # None → ckpt.tiny.DEFAULT_DIR
    device: str = "auto"  # "auto" | "cuda" | "cpu"
    dtype: str = "auto"  # "auto" → float16 on CUDA, float32 on CPU
    context_length: int | None = None
    max_total_tokens: int | None = None
    mem_fraction_static: float | None = None
    max_running_requests: int | None = None
    tp_size: int = 1
    enable_sglang_metrics: bool = False
    random_seed: int = 0
    hf_offline: bool = False
    hf_cache_dir: str | None = None
    sglang_log_level: str = "warning"
    sglang_args: dict[str, Any] = field(default_factory=dict)  # passed through to sglang.Engine
    runtime: ModelRuntime = ModelRuntime()
    media: MediaPolicy = MediaPolicy()


@dataclass(frozen=True)
class ServerSettings:
    engine: EngineSettings = EngineSettings()
    # --- HTTP ---------------------------------------------------------------------------------------------
    served_model_name: str = "auroracap"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # Host names a key-less server answers under, besides loopback and IPs
    enable_docs: bool = False  # /docs and /redoc load Swagger UI / ReDoc from a CDN: off unless asked for
    drain_timeout: float = 30.0
    log_level: str = "info"
    prometheus_multiproc_dir: str | None = None
    # --- transport limits (README "Limits") ---------------------------------------------------------------
    max_concurrency: int = 64  # generation requests holding a slot (0: unlimited)
    max_queue: int = 128  # generation requests waiting for a slot; past it, 429
    max_connections: int = 512  # open HTTP connections before uvicorn answers 503 (0: unlimited)
    header_timeout: float = 10.0  # seconds for a request's headers, from connect or the previous response
    body_timeout: float = 120.0  # seconds for a whole request body
    body_idle_timeout: float = 10.0  # seconds a request body may go without a byte
    max_json_items: int = 131072  # ',' '[' '{' in a JSON body: what parsing it costs
    # --- text limits ---------------------------------------------------------------------------------------
    max_text_chars: int = 65536  # all message text of a request, or a caption prompt
    max_stop_chars: int = 256  # each stop sequence
    # --- media fetching -----------------------------------------------------------------------------------
    allowed_local_media_path: str | None = None
    allow_media_hosts: tuple[str, ...] = ()
    max_media_mb: float = 64.0
    max_request_mb: float | None = None  # None → room for one max-size data: URL + 1 MiB
    max_frames_per_request: int = 0  # 0 → 4 × max_frames (four of the longest videos: the old 4-part limit)
    max_media_per_request: int = 0  # 0 → no cap of its own: every part is at least one frame of the budget
    media_connect_timeout: float = 5.0
    media_timeout: float = 30.0
    media_max_redirects: int = 3
    # --- generation ---------------------------------------------------------------------------------------
    default_max_tokens: int = 2048  # upstream inference.py's max_new_tokens; a caption, not a novel

    @property
    def max_media_bytes(self) -> int:
        return int(self.max_media_mb * MIB)

    @property
    def max_data_url_bytes(self) -> int:
        """Length of a ``data:`` URL carrying ``max_media_bytes`` (base64 grows 4/3) plus its header."""
        return 4 * math.ceil(self.max_media_bytes / 3) + 256

    @property
    def frame_budget(self) -> int:
        """Frames one request may ask for, over all its media (an image is one frame)."""
        return self.max_frames_per_request or 4 * self.engine.media.max_frames

    @property
    def max_request_bytes(self) -> int:
        if self.max_request_mb is not None:
            return int(self.max_request_mb * MIB)
        return self.max_data_url_bytes + MIB


# --- option table: (field, flag type, help) -----------------------------------------------------------------


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0, true/false), got {text!r}")


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str):
        value = kind(text)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _ratio(text: str) -> float:
    try:
        return check_ratio(float(text))
    except (ValueError, InvalidRequestError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


LIST = "list"
SWITCH = "switch"
OPTIONS: list[tuple[str, Any, str]] = [
    ("model_path", str, "checkpoint dir or hub id, xtuner or HF layout (none: the embedded tiny model)"),
    ("served_model_name", str, "model id clients send and /v1/models lists"),
    ("device", ["auto", "cuda", "cpu"], "where the engine runs"),
    ("dtype", ["auto", "float16", "bfloat16", "float32"], "weights dtype (auto: float16 on CUDA, float32 on CPU)"),
    ("context_length", _positive(int), "override the model's context length"),
    ("max_running_requests", _positive(int), "SGLang's cap on requests in one batch"),
    ("tiny_model_dir", str, "where the embedded tiny model is built when --model-path is not given "
     "(none: ~/.cache/aurora-serve/tiny-auroracap)"),
    ("hf_offline", SWITCH, "resolve hub ids from the local cache only"),
    ("enable_sglang_metrics", SWITCH, "also expose SGLang's own sglang:* metrics on /metrics"),
    ("prometheus_multiproc_dir", str, "directory for SGLang's multiprocess metrics (default: a fresh temp dir)"),
    ("sglang_args", _json_object,
     "JSON object of extra sglang.Engine arguments, e.g. '{\"chunked_prefill_size\": 4096}'"),
    ("merge_backend", list(MERGE_BACKENDS), "token-merge step in the vision tower: auto = the Triton "
     "kernel on CUDA and the PyTorch reference elsewhere; reference forces the reference (same outputs)"),
    ("decode_backend", list(VIDEO_BACKENDS), "video decoder: pyav (seeks to the sampled frames) or decord "
     "(needs the decord package)"),
    ("host", str, "address to bind"),
    ("port", _non_negative_int, "port to bind (0: any free port)"),
    ("api_key", LIST, "accepted API key(s) for 'Authorization: Bearer'; none given: no auth (env: comma-separated)"),
    ("allowed_hosts", LIST, "without --api-key: Host names /v1 answers under besides localhost and IP "
     "literals (DNS-rebinding guard; '.example.com' matches subdomains, '*' turns it off); a POST from another "
     "site's page (its Origin) is refused unless that host is listed here"),
    ("enable_docs", SWITCH, "serve /docs and /redoc (FastAPI's pages load their scripts from cdn.jsdelivr.net); "
     "/openapi.json is always served"),
    ("max_concurrency", _non_negative_int, "generation requests holding a slot, from before their body is read "
     "to their last byte (0: unlimited). Each may hold a body of --max-request-mb and its fetched media in "
     "memory; one GPU's SGLang batch gains little past a few dozen video requests, so more would only wait, "
     "holding memory"),
    ("max_queue", _non_negative_int, "generation requests waiting for a slot (each holds a socket and at most "
     "64 KiB, its body is not read); past it, 429 + Retry-After"),
    ("max_connections", _non_negative_int, "open HTTP connections (uvicorn's limit_concurrency); past it uvicorn "
     "answers 503 itself (0: unlimited)"),
    ("header_timeout", _positive(float), "seconds a connection may take to send a request's headers (from "
     "connecting, or from its previous response); then it is closed"),
    ("body_timeout", _positive(float), "seconds for a whole request body (covers --max-request-mb at ~6 Mbit/s); "
     "then 408"),
    ("body_idle_timeout", _positive(float), "seconds a request body may stall without a byte; then 408"),
    ("max_json_items", _positive(int), "',' '[' '{' counted in a JSON request body as it arrives (text "
     "included): parsing many tiny values costs seconds; past it, 400"),
    ("max_text_chars", _positive(int), "characters of all message text in a chat request, or of a caption "
     "prompt; refused (400) before templating and tokenizing. AuroraCap-7B's context is 4096 tokens (~16K "
     "characters)"),
    ("max_stop_chars", _positive(int), "characters of each stop sequence (SGLang tokenizes them); past it, 400"),
    ("drain_timeout", _positive(float), "seconds in-flight requests get to finish after SIGTERM"),
    ("log_level", ["debug", "info", "warning", "error"], "log level"),
    ("allowed_local_media_path", str, "directory file:// media URLs may read from (default: file:// refused)"),
    ("allow_media_hosts", LIST, "hosts or CIDRs media URLs may reach even if private/loopback (default: public only)"),
    ("max_media_mb", _positive(float), "largest media item (download, data: URL or upload), MiB"),
    ("max_request_mb", _positive(float), "largest request body, MiB (default: one max-size data: URL + 1 MiB)"),
    ("max_frames_per_request", _non_negative_int, "frames one request may ask for over all its media, an image "
     "being one frame (0: 4 x --max-frames)"),
    ("max_media_per_request", _non_negative_int, "media parts allowed in one request (0: as many as the frame "
     "budget allows)"),
    ("max_frames", _positive(int), "largest num_frames a request may ask for"),
    ("media_cache_mb", _non_negative_int, "memory for decoded+preprocessed media, so a repeated video skips "
     "decoding (0: off)"),
    ("max_decoded_frames", _positive(int), "frames the decoder may decode for one video (seeking to sampled frames "
     "decodes from the key frame before each); over it: 413 decode_budget_exceeded"),
    ("decode_timeout", _positive(float), "seconds one media item's decode may take; over it: 413 decode_timeout"),
    ("max_frame_pixels", _positive(int), "pixels in one video frame or image; over it: 413 media_too_large"),
    ("max_request_pixels", _positive(int), "pixels all of a request's sampled frames and images may decode to "
     "(frames x width x height); over it: 413 pixel_budget_exceeded"),
    ("media_workers", _non_negative_int, "processes that decode and crop media, in parallel and apart from the "
     "server (a crashing decoder takes only its worker); 0: decode on SGLang's media threads instead "
     "(none: one per CPU this process may run on, up to 32)"),
    ("media_worker_memory_mb", _non_negative_int, "address space one media worker may map, MiB (0: unlimited)"),
    ("media_connect_timeout", _positive(float), "seconds to connect to a media host"),
    ("media_timeout", _positive(float), "seconds for a whole media download"),
    ("media_max_redirects", _non_negative_int, "redirects followed per media URL"),
    ("default_token_kept_ratio", _ratio, "ρ when a request gives none (0 < ρ <= 1)"),
    ("default_num_frames", _positive(int), "frames sampled when a request gives none"),
    ("default_max_tokens", _positive(int), "max_tokens when a request gives none (upstream inference.py's 2048); "
     "a prompt + max_tokens over the context length is a 400"),
]


def _leaf_paths(cls: type, prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Every setting's name → its path through the nested settings (``max_frames`` → engine.media.max_frames)."""
    out: dict[str, tuple[str, ...]] = {}
    defaults = cls()
    for f in fields(cls):
        value = getattr(defaults, f.name)
        found = _leaf_paths(type(value), (*prefix, f.name)) if is_dataclass(value) else {f.name: (*prefix, f.name)}
        clash = set(found) & set(out)
        assert not clash, f"setting names must be unique across the nested settings: {clash}"
        out.update(found)
    return out


PATHS = _leaf_paths(ServerSettings)
assert all(name in PATHS for name, _, _ in OPTIONS), "every option names a settings field"


def default_of(name: str) -> Any:
    value: Any = ServerSettings()
    for step in PATHS[name]:
        value = getattr(value, step)
    return value


def _build(cls: type, values: Mapping[str, Any], prefix: tuple[str, ...] = ()):
    """``cls`` with ``values`` (leaf name → value) placed at their paths, defaults elsewhere."""
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for f in fields(cls):
        path = (*prefix, f.name)
        if is_dataclass(getattr(defaults, f.name)):
            kwargs[f.name] = _build(type(getattr(defaults, f.name)), values, path)
        elif path[-1] in values and PATHS.get(path[-1]) == path:
            kwargs[f.name] = values[path[-1]]
    return cls(**kwargs)


def engine_settings(**values: Any) -> EngineSettings:
    """``EngineSettings`` from setting names at any depth (``device=``, ``max_frames=``, ``merge_backend=``), for
    callers in Python (``Captioner``); a name that is not an engine setting is an error."""
    unknown = sorted(name for name in values if PATHS.get(name, ("",))[0] != "engine")
    if unknown:
        known = sorted(name for name, path in PATHS.items() if path[0] == "engine")
        raise TypeError(f"unknown engine option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return _build(EngineSettings, values, ("engine",))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aurora-serve serve",
        description="Serve AuroraCap behind an OpenAI-compatible HTTP API. Every flag can also be set with "
        "the AURORA_* variable named in its help; flags win over variables.",
    )
    add_options(p, [name for name, _, _ in OPTIONS])
    return p


def add_options(parser, names: Sequence[str], env: bool = True) -> None:
    """The flags of the settings ``names`` on ``parser`` (or an argument group), as ``serve`` has them: every
    other command that takes a setting takes it from here. A flag not given parses to None (the default then
    comes from the settings)."""
    table = {name: (kind, help_text) for name, kind, help_text in OPTIONS}
    for name in names:
        kind, help_text = table[name]
        default = default_of(name)
        shown = ", ".join(default) if isinstance(default, tuple) else default
        shown = "none" if shown in (None, "", {}) else shown
        text = f"{help_text} [{f'env {_env_name(name)}; ' if env else ''}default: {shown}]"
        if kind == SWITCH:
            parser.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        elif kind == LIST:
            parser.add_argument(_flag(name), dest=name, nargs="+", action="extend", default=None,
                                metavar=name.split("_")[-1].upper(), help=text)
        elif isinstance(kind, list):
            parser.add_argument(_flag(name), dest=name, choices=kind, default=None, help=text)
        else:
            parser.add_argument(_flag(name), dest=name, type=kind, default=None, help=text)


def engine_option_names(exclude: Sequence[str] = ()) -> list[str]:
    """The settings an in-process engine takes (``batch``'s engine flags), in ``serve``'s order."""
    return [name for name, _, _ in OPTIONS if PATHS[name][0] == "engine" and name not in exclude]


def _from_env(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> dict[str, Any]:
    known = {_env_name(name): (name, kind) for name, kind, _ in OPTIONS}
    unknown = sorted(k for k in environ
                     if k.startswith(ENV_PREFIX) and k not in known and k not in FOREIGN_ENV)
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for key, (name, kind) in known.items():
        if key not in environ:
            continue
        raw = environ[key]
        try:
            if kind == SWITCH:
                values[name] = _bool(raw)
            elif kind == LIST:
                values[name] = [x.strip() for x in raw.split(",") if x.strip()]
            elif isinstance(kind, list):
                if raw not in kind:
                    raise argparse.ArgumentTypeError(f"expected one of {kind}, got {raw!r}")
                values[name] = raw
            else:
                values[name] = kind(raw)
        except (argparse.ArgumentTypeError, ValueError) as e:
            parser.error(f"{key}: {e}")
    return values


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Flags ``argv`` (without the ``serve`` word) over ``environ`` (default: the process env) over defaults.

    Invalid values and unknown ``AURORA_*`` variables exit with status 2 and a message (argparse's way).
    """
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = vars(parser.parse_args(list(argv)))
    merged = {**_from_env(parser, environ), **{k: v for k, v in args.items() if v is not None}}
    if "prometheus_multiproc_dir" not in merged and environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged["prometheus_multiproc_dir"] = environ["PROMETHEUS_MULTIPROC_DIR"]  # prometheus_client's own name
    for name in ("api_key", "allow_media_hosts", "allowed_hosts"):
        if name in merged:
            merged[name] = tuple(merged[name])
    level = merged.get("log_level", default_of("log_level"))
    merged["sglang_log_level"] = {"debug": "info", "info": "warning"}.get(level, level)  # SGLang is chatty
    settings = _build(ServerSettings, merged)
    _check(parser, settings)
    return settings


def _check(parser: argparse.ArgumentParser, s: ServerSettings) -> None:
    media = s.engine.media
    if media.default_num_frames > media.max_frames:
        parser.error(f"--default-num-frames {media.default_num_frames} is over --max-frames {media.max_frames}")
    if s.allowed_local_media_path is not None and not Path(s.allowed_local_media_path).is_dir():
        parser.error(f"--allowed-local-media-path {s.allowed_local_media_path!r} is not a directory")
    if not 0 <= s.port <= 65535:
        parser.error(f"--port {s.port} is out of range")
    if any(not k for k in s.api_key):
        parser.error("--api-key values must not be empty")
    try:
        parse_allowed(s.allowed_hosts)
    except ValueError as e:
        parser.error(f"--allowed-hosts: {e}")
    if s.engine.runtime.decode_backend == "decord" and importlib.util.find_spec("decord") is None:
        parser.error("--decode-backend decord: the decord package is not installed (pip install 'aurora-serve[decord]')")
