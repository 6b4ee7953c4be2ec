"""``aurora-serve``: serve | caption | batch | make-tiny | convert. The only place that reads argv."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aurora_serve.config import ServerSettings
from aurora_serve.errors import AuroraError
from aurora_serve.media.item import MediaPolicy


def cmd_caption(args: argparse.Namespace) -> int:
    import asyncio

    from aurora_serve.engine import AuroraEngine, EngineSettings, GenerateRequest
    from aurora_serve.media.image import sniff_kind
    from aurora_serve.model.prompt import caption_prompt

    settings = EngineSettings(model_path=args.model_path, device=args.device, hf_offline=args.offline)
    path = str(Path(args.visual_input).resolve())
    engine = AuroraEngine(settings)
    try:
        item = settings.media.item(sniff_kind(path), path, token_kept_ratio=args.token_kept_ratio,
                                   num_frames=args.num_frm)
        req = GenerateRequest(
            prompt=caption_prompt(engine.tokenizer, item.kind, args.prompt),
            images=[item] if item.kind == "image" else [], videos=[item] if item.kind == "video" else [],
            sampling_params={"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens},
        )
        out = asyncio.run(engine.generate(req))
        per_frame = engine.spec.vision.tokens_per_frame(item.token_kept_ratio)
    finally:
        engine.shutdown()
    meta = out["meta_info"]
    if args.json:
        visual = int(meta.get("video_tokens") or 0) + int(meta.get("image_tokens") or 0)
        print(json.dumps({
            "caption": out["text"].strip(), "visual_tokens": visual, "prompt_tokens": meta["prompt_tokens"],
            "completion_tokens": meta["completion_tokens"], "cached_tokens": meta.get("cached_tokens", 0),
            "finish_reason": meta.get("finish_reason"), "token_kept_ratio": item.token_kept_ratio,
            "num_frames": visual // per_frame, "kind": item.kind,
        }))
    else:
        print(out["text"].strip())
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from aurora_serve.batch.cli_args import batch_options
    from aurora_serve.batch.job import run

    try:
        options = batch_options(args)
    except ValueError as e:
        args.parser.error(str(e))
    try:
        return run(options)
    except (FileNotFoundError, ValueError) as e:
        print(f"aurora-serve batch: error: {e}", file=sys.stderr)
        return 2


def cmd_make_tiny(args: argparse.Namespace) -> int:
    from aurora_serve.ckpt.tiny import make_tiny

    print(make_tiny(args.out, args.layout, seed=args.seed))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from aurora_serve.ckpt.layout import detect_layout, write_hf_from_xtuner, write_xtuner_from_hf

    src = Path(args.src)
    found = detect_layout(src)
    if found != args.from_layout:
        raise AuroraError(f"{src} is in the {found} layout, not {args.from_layout}")
    if (args.from_layout, args.to_layout) == ("xtuner", "hf"):
        write_hf_from_xtuner(src, Path(args.dst))
    elif (args.from_layout, args.to_layout) == ("hf", "xtuner"):
        write_xtuner_from_hf(src, Path(args.dst))
    else:
        raise AuroraError(f"nothing to convert from {args.from_layout} to {args.to_layout}")
    print(args.dst)
    return 0


def cmd_serve(argv: list[str]) -> int:
    from aurora_serve.config import parse_settings

    settings = parse_settings(argv)  # before the web stack and the engine load: `serve --help` stays instant
    from aurora_serve.api.server import main as serve_main

    return serve_main(settings)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aurora-serve", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the OpenAI-compatible HTTP server (see `aurora-serve serve --help`)", add_help=False)

    c = sub.add_parser("caption", help="caption one video or image through the SGLang engine")
    c.add_argument("--model-path", default=None, help="checkpoint dir or hub id (default: the embedded tiny model)")
    c.add_argument("--visual-input", required=True, help="video or image file")
    c.add_argument("--prompt", default="Describe the video in detail.")
    c.add_argument("--num-frm", type=int, default=None,
                   help=f"frames sampled with linspace(0, T-1, F) [default: {MediaPolicy.default_num_frames}]")
    c.add_argument("--token-kept-ratio", type=float, default=None, help="0 < ρ ≤ 1: share of tokens kept per "
                   f"frame [default: {MediaPolicy.default_token_kept_ratio}]")
    c.add_argument("--temperature", type=float, default=0.0)
    c.add_argument("--top-p", type=float, default=1.0)
    c.add_argument("--max-new-tokens", type=int, default=ServerSettings.default_max_tokens)
    c.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    c.add_argument("--offline", action="store_true", help="resolve hub ids from the local cache only")
    c.add_argument("--json", action="store_true", help="print one JSON object with caption and token counts")
    c.set_defaults(func=cmd_caption)

    b = sub.add_parser("batch", help="caption a directory, a list or a table of videos/images into JSONL or Parquet",
                       description="Caption every row of INPUT (a directory, a text list of paths/URLs, or a "
                       "CSV/TSV/JSONL/Parquet table) into OUTPUT (a directory of .jsonl or .parquet chunks). "
                       "Rerunning the same command resumes it.")
    from aurora_serve.batch.cli_args import add_batch_arguments

    add_batch_arguments(b)
    b.set_defaults(func=cmd_batch, parser=b)

    t = sub.add_parser("make-tiny", help="write a tiny random AuroraCap with the real vision geometry")
    t.add_argument("--out", required=True)
    t.add_argument("--layout", default="xtuner", choices=["xtuner", "hf"])
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_make_tiny)

    v = sub.add_parser("convert", help="convert a checkpoint between the xtuner and HF layouts")
    v.add_argument("--from", dest="from_layout", required=True, choices=["xtuner", "hf"])
    v.add_argument("--to", dest="to_layout", required=True, choices=["xtuner", "hf"])
    v.add_argument("src")
    v.add_argument("dst")
    v.set_defaults(func=cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return cmd_serve(argv[1:])
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except AuroraError as e:
        print(f"aurora-serve: error: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
