"""``aurora-serve batch`` flags → ``BatchOptions``. Light to import: the parser is built for every command."""

from __future__ import annotations

import argparse
import math

from aurora_serve.batch.tasks import Defaults, parse_shard
from aurora_serve.config import ServerSettings, add_options, engine_option_names
from aurora_serve.media.item import MediaPolicy


# Engine settings batch takes as per-row defaults of its own (--max-frames, --num-frames, --token-kept-ratio)
# or under another name (--offline, as `caption` has it); the metrics flag is the server's.
ROW_DEFAULTS = ("max_frames", "default_token_kept_ratio", "default_num_frames", "hf_offline", "enable_sglang_metrics")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="a directory (recursive), a text file of paths/URLs (one a line), "
                   "or a .csv/.tsv/.jsonl/.parquet table with a path or url column")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="a directory named *.jsonl or *.parquet (the chunks' format); an existing one is resumed")
    p.add_argument("--column", help="the table's source column (default: path, else url)")
    g = p.add_argument_group("per-row defaults (a row's own column wins)")
    g.add_argument("--prompt", help="instruction (default: 'Describe the video/image in detail.')")
    g.add_argument("--token-kept-ratio", type=_positive(float),
                   help=f"0 < ρ <= 1 [default: {MediaPolicy.default_token_kept_ratio}]")
    g.add_argument("--num-frames", type=_positive(int), help=f"frames per video [default: {MediaPolicy.default_num_frames}]")
    g.add_argument("--fps", type=_positive(float), help="sample at this rate instead of a fixed count")
    g.add_argument("--max-frames", type=_positive(int),
                   help=f"cap on frames (with --fps) and on any row's num_frames [default: {MediaPolicy.max_frames}]")
    g.add_argument("--window-seconds", type=_positive(float),
                   help="caption each video as consecutive windows of this many seconds, a row per window")
    g = p.add_argument_group("generation")
    g.add_argument("--max-tokens", type=_positive(int), default=ServerSettings.default_max_tokens)
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (AuroraCap's reference decoding)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--ignore-eos", action="store_true", help="generate exactly --max-tokens (for benchmarks)")
    g = p.add_argument_group("run")
    g.add_argument("--max-in-flight", type=_positive(int), default=16, help="requests in flight at once")
    g.add_argument("--shard", help="i/n: only the rows whose id hashes to i of n (split a table across machines)")
    g.add_argument("--chunk-rows", type=_positive(int), default=500, help="rows per output chunk, at most")
    g.add_argument("--chunk-seconds", type=_positive(float), default=10.0,
                   help="commit finished rows at least this often (a kill loses no more than this and the rows "
                   "in flight)")
    g.add_argument("--grace", type=float, default=30.0, help="seconds rows in flight get after SIGINT/SIGTERM")
    g.add_argument("--log-every", type=_positive(float), default=30.0,
                   help="seconds between progress lines when stderr is not a terminal")
    g.add_argument("--no-progress-bar", action="store_true", help="log lines even on a terminal")
    g = p.add_argument_group("engine (in-process and --ray; as on serve)")
    add_options(g, engine_option_names(exclude=ROW_DEFAULTS), env=False)
    g.add_argument("--offline", action="store_true", help="resolve hub ids from the local cache only")
    g = p.add_argument_group("media URLs (fetched as the server fetches them)")
    g.add_argument("--allow-media-hosts", nargs="+", default=[], metavar="HOST",
                   help="hosts or CIDRs URLs may reach even if private/loopback")
    g.add_argument("--max-media-mb", type=_positive(float), default=ServerSettings.max_media_mb)
    g.add_argument("--media-timeout", type=_positive(float), default=ServerSettings.media_timeout)
    g = p.add_argument_group("elsewhere")
    g.add_argument("--server", metavar="URL", help="send the rows to a running aurora-serve instead")
    g.add_argument("--api-key", help="the server's API key (--server)")
    g.add_argument("--max-retries", type=int, default=8, help="--server: retries after 429/503/connection errors")
    g.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray Data (an address such as ray://head:10001 or auto; none: a local Ray)")
    g.add_argument("--ray-actors", type=_positive(int), default=1, help="engines (Ray actors), one per GPU")
    g.add_argument("--ray-gpus-per-actor", type=float, help="default: 1 when the cluster has GPUs, else 0")


def batch_options(args: argparse.Namespace):
    """The parsed flags as ``BatchOptions`` (ValueError on a combination that cannot run)."""
    from aurora_serve.batch.job import BatchOptions
    from aurora_serve.config import engine_settings
    from aurora_serve.media.fetch import FetchLimits

    if args.server and args.ray is not None:
        raise ValueError("--server and --ray are two ways to run the job: choose one")
    if args.num_frames is not None and args.fps is not None:
        raise ValueError("--num-frames and --fps are two frame rules: choose one")
    engine = {name: getattr(args, name) for name in engine_option_names(exclude=ROW_DEFAULTS)
              if getattr(args, name) is not None}
    engine.update(hf_offline=args.offline, max_frames=args.max_frames or MediaPolicy.max_frames)
    media_bytes = int(args.max_media_mb * 1024 * 1024)
    return BatchOptions(
        input=args.input, output=args.output, column=args.column,
        defaults=Defaults(prompt=args.prompt, token_kept_ratio=args.token_kept_ratio, num_frames=args.num_frames,
                          fps=args.fps, max_frames=args.max_frames, window_seconds=args.window_seconds),
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, ignore_eos=args.ignore_eos,
        max_in_flight=args.max_in_flight,
        chunk_rows=args.chunk_rows, chunk_seconds=args.chunk_seconds,
        shard=parse_shard(args.shard) if args.shard else None, grace=args.grace, log_every=args.log_every,
        progress_bar=False if args.no_progress_bar else None, server=args.server, api_key=args.api_key,
        max_retries=args.max_retries, ray=args.ray, ray_actors=args.ray_actors,
        ray_gpus_per_actor=args.ray_gpus_per_actor,
        engine=engine_settings(**engine),
        fetch=FetchLimits(max_bytes=media_bytes, max_data_url_bytes=4 * media_bytes // 3 + 256,
                          total_timeout=args.media_timeout, allow_hosts=tuple(args.allow_media_hosts)),
    )
