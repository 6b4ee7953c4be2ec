"""A bounded soak: mixed good and hostile traffic at a fixed concurrency against a loopback server.

    python -m benchmarks.soak [--seconds 240] [--concurrency 8] [--out benchmarks/results/soak_cpu_tiny.json]

Good requests (small videos and images as data: URLs) and hostile ones (``benchmarks.hostile``: budget-busting
video, hostile containers, oversized images, malformed bodies) are drawn at random by every client. Reported:
answers by status (the target is no 5xx at all), the resident memory of the server's process tree sampled every second (growth
after a warm-up, target at most 5 %), and the in-flight / queued gauges after the traffic stops (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

from . import hostile
from .loadgen import ClipSpec, MediaFactory, check_loopback
from .provenance import command, git_state, machine
from .served import Server

MALFORMED = [b'{"model": "auroracap", "messages": [', b'{"model": "auroracap"}',
             b'{"model": "auroracap", "messages": [{"role": "user", "content": "hi"}], "bogus": 1}']


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--warmup-share", type=float, default=0.25, help="share of the run before memory is baselined")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--hostile-share", type=float, default=0.4)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/soak_cpu_tiny.json"))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build_requests(seed: int) -> list[tuple[str, dict | bytes]]:
    """``(kind, body)`` pools: 'good', 'hostile', 'malformed'."""
    media = MediaFactory(ClipSpec(2.0, 160, 120), seed_base=seed)
    good = []
    for i in range(16):
        item = media.video(i) if i % 2 else media.image(i)
        part = {"type": f"{item.kind}_url", f"{item.kind}_url": {"url": item.data_url()}}
        good.append(("good", chat([part], num_frames=4, token_kept_ratio=0.2)))
    corpus = hostile.corpus(media.video(99).data)
    bad = [("hostile", chat([{"type": h.part, h.part: {"url": "data:application/octet-stream;base64,"
                                                       + base64.b64encode(h.data).decode()}}], **h.options))
           for name, h in corpus.items() if "4K" not in name]  # the 4K clip is served (slowly), not refused
    return good + bad + [("malformed", raw) for raw in MALFORMED]


def chat(parts: list[dict], **options) -> dict:
    return {"model": "auroracap", "max_tokens": 4, **options,
            "messages": [{"role": "user", "content": parts + [{"type": "text", "text": "Describe."}]}]}


async def client(base: str, pools: dict, share: float, until: float, rng: random.Random, tally: Counter) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.monotonic() < until:
            kind = "good" if rng.random() >= share else rng.choice(["hostile", "hostile", "malformed"])
            body = rng.choice(pools[kind])
            try:
                if isinstance(body, bytes):
                    r = await http.post("/v1/chat/completions", content=body,
                                        headers={"content-type": "application/json"})
                else:
                    r = await http.post("/v1/chat/completions", json=body)
                tally[(kind, r.status_code, _code(r))] += 1
            except httpx.HTTPError as exc:
                tally[(kind, type(exc).__name__, None)] += 1


def _code(r: httpx.Response) -> str | None:
    """The OpenAI error envelope's code, for answers that are errors."""
    if r.status_code < 400:
        return None
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "not an error envelope"


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of the server and every process under it (SGLang's scheduler and detokenizer, the media
    workers, where the decoding happens): a leak in any of them counts."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:  # a worker replaced between the listing and the read
            continue
    return total


async def sample_rss(pid: int, until: float, samples: list) -> None:
    proc = psutil.Process(pid)
    while time.monotonic() < until:
        samples.append((time.monotonic(), tree_rss(proc)))
        await asyncio.sleep(1.0)


async def run(server: Server, args) -> dict:
    pools: dict[str, list] = {"good": [], "hostile": [], "malformed": []}
    for kind, body in build_requests(args.seed):
        pools[kind].append(body)
    start = time.monotonic()
    until = start + args.seconds
    tally: Counter = Counter()
    rss: list = []
    rng = random.Random(args.seed)
    await asyncio.gather(sample_rss(server.proc.pid, until, rss),
                         *(client(server.base, pools, args.hostile_share, until, random.Random(rng.random()), tally)
                           for _ in range(args.concurrency)))
    await asyncio.sleep(2.0)  # let aborted work settle before the gauges are read
    gauges = server.gauges()
    warm = [r for t, r in rss if t - start >= args.seconds * args.warmup_share]
    growth = (max(warm[len(warm) // 2:]) - warm[0]) / warm[0] if len(warm) > 2 else None
    answers = {" ".join(str(x) for x in key if x is not None): n for key, n in sorted(tally.items(), key=str)}
    five_xx = sum(n for (kind, status, code), n in tally.items() if isinstance(status, int) and status >= 500)
    return {"answers": answers, "requests": sum(tally.values()), "five_xx": five_xx,
            "rss_mb": {"after_warmup": warm[0] / 2**20 if warm else None, "max": max(r for _, r in rss) / 2**20,
                       "end": rss[-1][1] / 2**20},
            "rss_growth_after_warmup": growth, "gauges_after": gauges,
            "met": {"no_5xx": five_xx == 0, "rss_growth_le_5pct": growth is not None and growth <= 0.05,
                    "gauges_zero": all(v == 0 for v in gauges.values())}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    server = Server(extra=["--max-media-mb", "8"])
    check_loopback(server.base + "/v1", allow_remote=False)
    try:
        result = asyncio.run(run(server, args))
    finally:
        server.stop()
    report = {"benchmark": "soak", "command": command(), "git": git_state(), "machine": machine(),
              "load": os.getloadavg(), "settings": {k: str(v) for k, v in vars(args).items()}, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("requests", "five_xx", "rss_mb", "rss_growth_after_warmup",
                                             "gauges_after", "met")}, indent=2))
    return report


if __name__ == "__main__":
    main()
