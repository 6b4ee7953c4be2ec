"""Typed server settings: ``aurora-serve serve`` flags and ``AURORA_*`` variables → one frozen object.

The only module that reads the process environment. Every option has a flag ``--foo-bar`` and a variable
``AURORA_FOO_BAR``; a flag beats the variable, the variable beats the default. List options take a
comma-separated variable (``AURORA_API_KEY=k1,k2``), switches take ``1/true/yes/on`` or ``0/false/no/off``.
An ``AURORA_*`` variable that names no option is an error, so a typo never silently falls back to a
default. Everything below this module receives explicit arguments (``ServerSettings``, ``EngineSettings``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from aurora_serve.engine import EngineSettings
from aurora_serve.kernels.dispatch import BACKENDS as MERGE_BACKENDS
from aurora_serve.media.decode import VIDEO_BACKENDS
from aurora_serve.model.token_count import validate_ratio

ENV_PREFIX = "AURORA_"
# AURORA_* variables read before this process exists (environment build, interpreter boot hook): not ours.
FOREIGN_ENV = ("AURORA_ENV_CACHE", "AURORA_TORCH_INDEX_URL", "AURORA_CPU_COMPAT")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    # --- model / engine ---------------------------------------------------------------------------------
    model_path: str | None = None
    served_model_name: str = "auroracap"
    device: str = "auto"
    dtype: str = "auto"
    context_length: int | None = None
    max_running_requests: int | None = None
    tiny_model_dir: str | None = None
    hf_offline: bool = False
    enable_sglang_metrics: bool = False
    prometheus_multiproc_dir: str | None = None
    sglang_args: str | None = None  # JSON object passed through to sglang.Engine
    merge_backend: str = "auto"
    decode_backend: str = "pyav"
    # --- HTTP ---------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: tuple[str, ...] = ()
    max_concurrency: int = 0  # 0 = unlimited
    drain_timeout: float = 30.0
    log_level: str = "info"
    # --- media --------------------------------------------------------------------------------------------
    allowed_local_media_path: str | None = None
    allow_media_hosts: tuple[str, ...] = ()
    max_media_mb: float = 64.0
    max_request_mb: float | None = None  # None → room for one max-size data: URL + 1 MiB
    max_media_per_request: int = 4
    max_frames: int = 64
    media_cache_mb: int = 512
    media_connect_timeout: float = 5.0
    media_timeout: float = 30.0
    media_max_redirects: int = 3
    # --- generation defaults ------------------------------------------------------------------------------
    default_token_kept_ratio: float = 0.8
    default_num_frames: int = 8
    default_max_tokens: int = 2048  # upstream inference.py's max_new_tokens; a caption, not a novel

    @property
    def max_media_bytes(self) -> int:
        return int(self.max_media_mb * MIB)

    @property
    def max_data_url_bytes(self) -> int:
        """Length of a ``data:`` URL carrying ``max_media_bytes`` (base64 grows 4/3) plus its header."""
        return 4 * math.ceil(self.max_media_bytes / 3) + 256

    @property
    def max_request_bytes(self) -> int:
        if self.max_request_mb is not None:
            return int(self.max_request_mb * MIB)
        return self.max_data_url_bytes + MIB

    def engine_settings(self) -> EngineSettings:
        extra: dict[str, Any] = {}
        if self.tiny_model_dir is not None:
            extra["tiny_model_dir"] = self.tiny_model_dir
        return EngineSettings(
            model_path=self.model_path, device=self.device, dtype=self.dtype,
            context_length=self.context_length, max_running_requests=self.max_running_requests,
            enable_metrics=self.enable_sglang_metrics, hf_offline=self.hf_offline, max_frames=self.max_frames,
            merge_backend=self.merge_backend, decode_backend=self.decode_backend,
            media_cache_mb=self.media_cache_mb,
            default_token_kept_ratio=self.default_token_kept_ratio, default_num_frames=self.default_num_frames,
            log_level={"debug": "info", "info": "warning"}.get(self.log_level, self.log_level),  # SGLang is chatty
            sglang_args=json.loads(self.sglang_args) if self.sglang_args else {}, **extra,
        )


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
        return validate_ratio(float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _json_object(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return text


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
    ("max_concurrency", _non_negative_int, "generation requests in flight before 429 + Retry-After (0: unlimited)"),
    ("drain_timeout", _positive(float), "seconds in-flight requests get to finish after SIGTERM"),
    ("log_level", ["debug", "info", "warning", "error"], "log level"),
    ("allowed_local_media_path", str, "directory file:// media URLs may read from (default: file:// refused)"),
    ("allow_media_hosts", LIST, "hosts or CIDRs media URLs may reach even if private/loopback (default: public only)"),
    ("max_media_mb", _positive(float), "largest media item (download, data: URL or upload), MiB"),
    ("max_request_mb", _positive(float), "largest request body, MiB (default: one max-size data: URL + 1 MiB)"),
    ("max_media_per_request", _positive(int), "media parts allowed in one request"),
    ("max_frames", _positive(int), "largest num_frames a request may ask for"),
    ("media_cache_mb", _non_negative_int, "memory for decoded+preprocessed media, so a repeated video skips "
     "decoding (0: off)"),
    ("media_connect_timeout", _positive(float), "seconds to connect to a media host"),
    ("media_timeout", _positive(float), "seconds for a whole media download"),
    ("media_max_redirects", _non_negative_int, "redirects followed per media URL"),
    ("default_token_kept_ratio", _ratio, "ρ when a request gives none (0 < ρ <= 1)"),
    ("default_num_frames", _positive(int), "frames sampled when a request gives none"),
    ("default_max_tokens", _positive(int), "max_tokens when a request gives none (upstream inference.py's 2048); "
     "a prompt + max_tokens over the context length is a 400"),
]


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
    defaults = ServerSettings()
    for name, kind, help_text in OPTIONS:
        default = getattr(defaults, name)
        shown = ", ".join(default) if isinstance(default, tuple) else default
        text = f"{help_text} [env {_env_name(name)}; default: {'none' if shown in (None, '') else shown}]"
        if kind == SWITCH:
            p.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction, help=text)
        elif kind == LIST:
            p.add_argument(_flag(name), dest=name, nargs="+", action="extend",
                           metavar=name.split("_")[-1].upper(), help=text)
        elif isinstance(kind, list):
            p.add_argument(_flag(name), dest=name, choices=kind, help=text)
        else:
            p.add_argument(_flag(name), dest=name, type=kind, help=text)
    p.set_defaults(**{name: None for name, _, _ in OPTIONS})
    return p


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
    for name in ("api_key", "allow_media_hosts"):
        if name in merged:
            merged[name] = tuple(merged[name])
    settings = ServerSettings(**{f.name: merged[f.name] for f in fields(ServerSettings) if f.name in merged})
    _check(parser, settings)
    return settings


def _check(parser: argparse.ArgumentParser, s: ServerSettings) -> None:
    if s.default_num_frames > s.max_frames:
        parser.error(f"--default-num-frames {s.default_num_frames} is over --max-frames {s.max_frames}")
    if s.allowed_local_media_path is not None and not Path(s.allowed_local_media_path).is_dir():
        parser.error(f"--allowed-local-media-path {s.allowed_local_media_path!r} is not a directory")
    if not 0 <= s.port <= 65535:
        parser.error(f"--port {s.port} is out of range")
    if any(not k for k in s.api_key):
        parser.error("--api-key values must not be empty")
    if s.decode_backend == "decord" and importlib.util.find_spec("decord") is None:
        parser.error("--decode-backend decord: the decord package is not installed (pip install 'aurora-serve[decord]')")
