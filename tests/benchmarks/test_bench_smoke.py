"""Smoke tests for the benchmark scripts (seconds, no SGLang): load_test end to end against the real HTTP app
over a scripted engine on loopback, the loopback guard, the statistics, and perf_ratios' verdicts."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import uvicorn

from aurora_serve.api.routes import create_app
from aurora_serve.config import parse_settings
from benchmarks import load_test, loadgen, perf_ratios
from tests.support.fake_engine import FakeEngine
from tests.support.server import free_port


class ScriptedEngine(FakeEngine):
    token_delay = 0.002  # inter-token latencies the load test can measure


@pytest.fixture(scope="module")
def base_url():
    port = free_port()
    app = create_app(parse_settings([], environ={}), engine_factory=ScriptedEngine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not (server.started and app.state.lifecycle.phase == "ready"):
        assert time.time() < deadline, "the app did not become ready"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


def test_load_test_quick_end_to_end(base_url, tmp_path):
    out = tmp_path / "load.json"
    load_test.main(["--base-url", base_url, "--quick", "--workloads", "images+videos", "--rates", "20",
                    "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["command"] and report["machine"]["cpu_count"]
    points = report["points"]
    assert [(p["mode"], p["level"]) for p in points] == [("closed", 1), ("closed", 2), ("open", 20.0)]
    for p in points:
        assert p["ok"] == p["requests"] == 4 and p["errors"] == {}
        assert p["output_tokens"] == 4 * 8 and p["visual_tokens_per_s"] > 0
        assert 0 < p["ttft_s"]["p50"] <= p["e2e_s"]["p99"] and p["itl_s"]["p50"] > 0 and p["tpot_s"]["p90"] > 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert out.with_suffix(".png").stat().st_size > 0


def test_errors_are_counted_by_type(base_url):
    from openai import AsyncOpenAI

    async def go():
        client = AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        item = loadgen.Media("video", b"not a video")
        bad = await loadgen.chat_once(client, "no-such-model", item, max_tokens=2, num_frames=2, ratio=0.5,
                                      ignore_eos=True)
        await client.close()
        return bad

    result = asyncio.run(go())
    assert not result.ok and result.error == "http_404"
    assert loadgen.summarize([result], 1.0)["errors"] == {"http_404": 1}


def test_refuses_non_loopback_targets():
    loadgen.check_loopback("http://127.0.0.1:8000/v1", allow_remote=False)
    loadgen.check_loopback("http://[::1]:8000/v1", allow_remote=False)
    with pytest.raises(SystemExit, match="allow-remote"):
        loadgen.check_loopback("http://192.0.2.10:8000/v1", allow_remote=False)  # TEST-NET-1: never contacted
    loadgen.check_loopback("http://192.0.2.10:8000/v1", allow_remote=True)


def test_workloads_reuse_what_they_should(tmp_path):
    media = loadgen.MediaFactory(loadgen.ClipSpec(1, 64, 48), cache_dir=tmp_path)
    keys = lambda kind: [m.key for m in loadgen.requests(kind, 6, media, repeat_share=0.5, repeat_pool=1)]  # noqa: E731
    assert len(set(keys("unique"))) == 6 and len(set(keys("repeated"))) == 1
    assert [m.kind for m in loadgen.requests("images+videos", 4, media)] == ["image", "video", "image", "video"]
    mixed = keys("mixed")
    assert 1 < len(set(mixed)) < 6


def test_summary_statistics():
    r = loadgen.Result("video", start=0.0, first=1.0, end=3.0, chunk_times=[1.0, 2.0, 3.0], completion_tokens=3,
                       prompt_tokens=100, cached_tokens=50, visual_tokens=80)
    s = loadgen.summarize([r, loadgen.Result("video", 0.0, error="deadline")], wall_s=4.0)
    assert s["ok"] == 1 and s["errors"] == {"deadline": 1}
    assert s["ttft_s"]["p50"] == 1.0 and s["tpot_s"]["p50"] == 1.0 and s["itl_s"]["p99"] == 1.0
    assert s["output_tokens_per_s"] == 0.75 and s["visual_tokens_per_s"] == 20.0 and s["cached_prompt_share"] == 0.5


def test_perf_ratio_verdicts():
    rnd = lambda http, direct, b: {"http": {"throughput": {"requests_per_s": http},  # noqa: E731
                                            "ttft_repeats": [{"ratio": b}]}, "direct": {"requests_per_s": direct}}
    out = perf_ratios.ratios({"requests_per_s": 0.5}, [rnd(5.0, 5.0, 0.1), rnd(4.0, 5.0, 0.3), rnd(6.0, 6.0, 0.1)])
    assert out["A_server_c16_over_sequential_pytorch"] == {"value": 10.0, "target": ">= 8.0", "met": True}
    assert out["B_ttft_repeated_over_first"]["value"] == 0.1 and out["B_ttft_repeated_over_first"]["met"]
    assert out["C_http_over_direct_engine"]["value"] == 1.0 and out["C_http_over_direct_engine"]["met"]
    slow = perf_ratios.ratios({"requests_per_s": 1.0}, [rnd(2.0, 4.0, 0.5)])
    assert [slow[name]["met"] for name in perf_ratios.TARGETS] == [False, False, False]
    assert out["cross_check"]["per_round_C"] == [1.0, 0.8, 1.0]
