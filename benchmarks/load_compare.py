"""The served load test before and after a change, side by side in one run: ``load_test``'s closed-loop points
against a server running another commit's code (a git worktree of ``--before``) and one running this checkout,
alternating (before, after, before, after, …) so that drift in the machine's load falls on both alike.

    .venv/bin/python -m benchmarks.load_compare --before d87bf27 --concurrency 4,16 --requests 32 --rounds 2

Both servers run with their own defaults and the same venv; each round gets fresh media (another seed), so no
point profits from a cache an earlier one filled. Prints and writes per-point medians over the rounds, the
after ÷ before ratios of requests/s and TTFT p50, and requests/s after ÷ before paired within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
from pathlib import Path

from .load_test import parse_args as load_args
from .load_test import sweep
from .provenance import command, git_state, machine
from .served import REPO, Server


def worktree(rev: str) -> Path:
    """A detached worktree of ``rev`` beside the repository's git directory (made once, reused)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"aurora-serve-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=REPO, check=True,
                       capture_output=True)
    return path


def one_run(tree: Path, argv: list[str], seed: int) -> list[dict]:
    server = Server(tree=tree)
    try:
        args = load_args([*argv, "--base-url", server.base + "/v1", "--seed", str(seed)])
        return asyncio.run(sweep(args))
    finally:
        server.stop()


def summary(runs: list[list[dict]]) -> list[dict]:
    """Per point, the median over rounds of the numbers that compare."""
    out = []
    for points in zip(*runs):
        first = points[0]
        out.append({"workload": first["workload"], "level": first["level"],
                    "requests_per_s": statistics.median(p["requests_per_s"] for p in points),
                    "ttft_p50_s": statistics.median(p["ttft_s"]["p50"] for p in points),
                    "e2e_p50_s": statistics.median(p["e2e_s"]["p50"] for p in points),
                    "errors": [p["errors"] for p in points if p["errors"]]})
    return out


def paired(runs: dict[str, list]) -> list[dict]:
    """Per point, after ÷ before of requests/s within each round (the two ran minutes apart) and their geometric
    mean: on a machine whose speed drifts between rounds this is steadier than a ratio of medians."""
    out = []
    for i, point in enumerate(runs["before"][0]):
        ratios = [a[i]["requests_per_s"] / b[i]["requests_per_s"] for b, a in zip(runs["before"], runs["after"])]
        out.append({"workload": point["workload"], "level": point["level"], "by_round": ratios,
                    "geometric_mean": math.exp(sum(map(math.log, ratios)) / len(ratios))})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default="d87bf27", help="git revision of the 'before' server")
    p.add_argument("--workloads", default="unique")
    p.add_argument("--concurrency", default="4,16")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/load_compare_cpu_tiny.json")
    args = p.parse_args(argv)
    load_argv = ["--workloads", args.workloads, "--concurrency", args.concurrency, "--requests",
                 str(args.requests), "--max-tokens", str(args.max_tokens), "--duration", "300"]
    trees = {"before": worktree(args.before), "after": REPO}
    runs: dict[str, list] = {"before": [], "after": []}
    loads = [list(os.getloadavg())]
    for r in range(args.rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            print(f"round {r + 1}: {name} ({trees[name]})", flush=True)
            runs[name].append(one_run(trees[name], load_argv, seed=100 + r))
            loads.append(list(os.getloadavg()))
    table = {name: summary(rs) for name, rs in runs.items()}
    ratios = [{"workload": b["workload"], "level": b["level"],
               "requests_per_s_after_over_before": a["requests_per_s"] / b["requests_per_s"],
               "ttft_p50_after_over_before": a["ttft_p50_s"] / b["ttft_p50_s"]}
              for b, a in zip(table["before"], table["after"])]
    pairs = paired(runs)
    for row, pair in zip(ratios, pairs):
        row["requests_per_s_paired_geometric_mean"] = pair["geometric_mean"]
    for row in ratios:
        print(f"{row['workload']} c={row['level']}: req/s after/before {row['requests_per_s_after_over_before']:.2f}, "
              f"TTFT p50 after/before {row['ttft_p50_after_over_before']:.2f}")
    report = {"benchmark": "load_compare", "command": command(), **git_state(), "machine": machine(),
              "before": args.before, "settings": vars(args) | {"out": str(args.out)}, "load_average": loads,
              "medians": table, "ratios": ratios, "paired": pairs, "runs": runs}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
