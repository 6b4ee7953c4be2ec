"""Load test a running aurora-serve with the ``openai`` client: closed-loop concurrency sweeps and open-loop
Poisson arrivals over the workloads of ``loadgen.py`` (unique / repeated / mixed videos, images + videos).

Per point: TTFT, time per output token, inter-token latency and end-to-end latency at p50/p90/p99; requests/s,
output tokens/s, visual tokens/s; the cached share of prompt tokens; errors by type. Every point is bounded by a
request count and a duration; requests still running at the deadline are cancelled and counted as errors.
Targets must resolve to loopback unless ``--allow-remote`` is given. Writes JSON, and PNG plots when matplotlib
is installed.

    .venv/bin/aurora-serve serve --port 8123 &                 # then, once /ready answers 200:
    .venv/bin/python -m benchmarks.load_test --base-url http://127.0.0.1:8123/v1 --quick
    .venv/bin/python -m benchmarks.load_test --base-url http://127.0.0.1:8123/v1 \
        --workloads unique,repeated,mixed,images+videos --concurrency 1,4,16 --rates 0.5,1 \
        --out benchmarks/results/load_test_cpu_tiny.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

from tqdm import tqdm

from .loadgen import (WORKLOADS, ClipSpec, MediaFactory, Result, chat_once, check_loopback, environment,
                      requests, summarize)


FULL = {"workloads": "unique,repeated", "concurrency": [1, 4, 16], "rates": [], "requests": 32, "duration": 120.0,
        "max_tokens": 64, "clip": "4,480,270"}
QUICK = {"workloads": "unique", "concurrency": [1, 2], "rates": [], "requests": 4, "duration": 60.0,
         "max_tokens": 8, "clip": "2,320,180"}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--allow-remote", action="store_true", help="allow a target that is not loopback")
    p.add_argument("--api-key", default="none")
    p.add_argument("--model", default="auroracap")
    p.add_argument("--workloads", default=None, help=f"comma-separated: {', '.join(WORKLOADS)} [unique,repeated]")
    p.add_argument("--concurrency", type=_ints, default=None, help="closed-loop sweep, '' to skip [1,4,16]")
    p.add_argument("--rates", type=_floats, default=None, help="open-loop Poisson rates, requests/s [none]")
    p.add_argument("--requests", type=int, default=None, help="requests per point, at most [32]")
    p.add_argument("--duration", type=float, default=None, help="seconds per point, at most [120]")
    p.add_argument("--request-timeout", type=float, default=300.0)
    p.add_argument("--max-tokens", type=int, default=None, help="[64]")
    p.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                   help="generate exactly --max-tokens (comparable points)")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--token-kept-ratio", type=float, default=0.2)
    p.add_argument("--repeat-share", type=float, default=0.5, help="mixed: share of requests reusing a pool video")
    p.add_argument("--repeat-pool", type=int, default=2, help="videos that repeated/mixed requests reuse")
    p.add_argument("--clip", default=None, help="generated clips: seconds,width,height (30 fps) [4,480,270]")
    p.add_argument("--seed", type=int, default=0, help="media seed base: change it to avoid a warm server cache")
    p.add_argument("--out", type=Path, default=None, help="JSON path (plots beside it)")
    p.add_argument("--replot", type=Path, default=None, help="only redraw the PNG of an existing JSON result")
    p.add_argument("--quick", action="store_true", help="smoke-test defaults: unique, c=1,2, 4 requests, 8 tokens")
    args = p.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():  # flags given explicitly win over either set
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.workloads = [w for w in args.workloads.split(",") if w]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; expected one of {', '.join(WORKLOADS)}")
    return args


async def _bounded(coro, deadline: float):
    try:
        return await asyncio.wait_for(coro, max(0.0, deadline - time.perf_counter()))
    except TimeoutError:
        return None


async def closed_loop(client, items, concurrency: int, args, bar) -> tuple[list[Result], float]:
    """``concurrency`` workers, each sending its next request when the previous one finishes."""
    queue = list(reversed(items))
    results: list[Result] = []
    deadline = time.perf_counter() + args.duration

    async def worker():
        while queue and time.perf_counter() < deadline:
            item = queue.pop()
            start = time.perf_counter()
            r = await _bounded(_send(client, item, args), deadline)
            results.append(r or Result(item.kind, start, error="deadline"))
            bar.update(1)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.perf_counter() - start


async def open_loop(client, items, rate: float, args, bar, seed: int = 0) -> tuple[list[Result], float]:
    """Poisson arrivals at ``rate``/s, independent of completions (queueing shows up as latency)."""
    rng = random.Random(seed)
    deadline = time.perf_counter() + args.duration
    tasks = []
    start = time.perf_counter()
    for item in items:
        if time.perf_counter() >= deadline:
            break

        async def one(item=item):
            t0 = time.perf_counter()
            r = await _bounded(_send(client, item, args), deadline)
            bar.update(1)
            return r or Result(item.kind, t0, error="deadline")

        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(rng.expovariate(rate))
    results = list(await asyncio.gather(*tasks))
    return results, time.perf_counter() - start


def _send(client, item, args):
    return chat_once(client, args.model, item, max_tokens=args.max_tokens, num_frames=args.num_frames,
                     ratio=args.token_kept_ratio, ignore_eos=args.ignore_eos)


async def sweep(args) -> list[dict]:
    from openai import AsyncOpenAI

    seconds, width, height = args.clip.split(",")
    factory = MediaFactory(ClipSpec(float(seconds), int(width), int(height)), seed_base=args.seed * 10**9)
    client = AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=args.request_timeout)
    warm = await _send(client, factory.video(999_999), args)  # excluded: first-request effects of the server
    if not warm.ok:
        raise SystemExit(f"warm-up request failed ({warm.error}); is the server ready at {args.base_url}?")
    points = [("closed", c) for c in args.concurrency] + [("open", r) for r in args.rates]
    rows = []
    for index, workload in enumerate(args.workloads):
        for j, (mode, level) in enumerate(points):
            # fresh media per point (disjoint seed ranges), so no point profits from a cache an earlier one filled
            factory.seed_base = args.seed * 10**9 + (index * len(points) + j + 1) * 10**6
            items = requests(workload, args.requests, factory, args.repeat_share, args.repeat_pool, seed=j)
            label = f"{workload} {mode} {'c=' if mode == 'closed' else 'rate='}{level}"
            with tqdm(total=len(items), desc=label, unit="req", leave=False) as bar:
                if mode == "closed":
                    results, wall = await closed_loop(client, items, level, args, bar)
                else:
                    results, wall = await open_loop(client, items, level, args, bar, seed=j)
            row = {"workload": workload, "mode": mode, "level": level, **summarize(results, wall)}
            rows.append(row)
            tqdm.write(f"{label:>28}: {row['requests_per_s']:.3f} req/s, {row['output_tokens_per_s']:.1f} tok/s, "
                       f"TTFT p50 {_ms(row['ttft_s']['p50'])}, p99 {_ms(row['ttft_s']['p99'])}, "
                       f"errors {row['errors'] or 0}")
    await client.close()
    return rows


def _ms(value) -> str:
    return "-" if value is None else f"{value * 1e3:.0f} ms"


def plot(rows: list[dict], path: Path) -> Path | None:
    """Throughput and latency vs load, one line per workload (closed loop and open loop side by side)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    modes = [m for m in ("closed", "open") if any(r["mode"] == m for r in rows)]
    fig, axes = plt.subplots(len(modes), 3, figsize=(15, 4 * len(modes)), squeeze=False)
    for i, mode in enumerate(modes):
        for workload in dict.fromkeys(r["workload"] for r in rows):
            pts = [r for r in rows if r["mode"] == mode and r["workload"] == workload]
            x = [r["level"] for r in pts]
            (line,) = axes[i][0].plot(x, [r["output_tokens_per_s"] for r in pts], "o-", label=workload)
            color = line.get_color()
            axes[i][1].plot(x, [r["ttft_s"]["p50"] or float("nan") for r in pts], "o-", color=color,
                            label=f"{workload} p50")
            axes[i][1].plot(x, [r["ttft_s"]["p99"] or float("nan") for r in pts], "x--", color=color,
                            label=f"{workload} p99")
            axes[i][2].plot(x, [r["tpot_s"]["p50"] or float("nan") for r in pts], "o-", color=color,
                            label=f"{workload} p50")
        xlabel = "concurrency (closed loop)" if mode == "closed" else "arrival rate, req/s (open loop, Poisson)"
        for ax, title in zip(axes[i], ("output tokens/s", "TTFT (s)", "time per output token (s)")):
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        axes[i][1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.replot is not None:
        print(plot(json.loads(args.replot.read_text())["points"], args.replot.with_suffix(".png")))
        return
    check_loopback(args.base_url, args.allow_remote)
    env = environment()
    rows = asyncio.run(sweep(args))
    report = {"benchmark": "load_test", **env,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k not in ("api_key",)},
              "load_average_after": list(__import__("os").getloadavg()), "points": rows}
    if args.out is None:
        print(json.dumps(rows, indent=1))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    png = plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out}" + (f" and {png}" if png else " (no plot: matplotlib is not installed)"))


if __name__ == "__main__":
    main()
