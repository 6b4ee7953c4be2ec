"""Prometheus metrics: ours (``aurora_*``) in a private registry, plus SGLang's own when enabled.

What is measured, and where:

- ``aurora_requests_total{endpoint,status}``: every response of the API routes (ASGI layer, so 4xx from
  validation, auth, Host/Origin, body limits and admission are counted too).
- ``aurora_time_to_first_token_seconds``, ``aurora_e2e_request_latency_seconds``,
  ``aurora_time_per_output_token_seconds``: from a generation request's parsed body (time waiting for a slot
  and reading the body are not included) to its first engine chunk / last chunk;
  TPOT = (last − first) / (completion tokens − 1).
  TTFT therefore includes media fetch, decode, vision encoding, queueing and prefill (as vLLM's does).
- ``aurora_media_fetch_seconds{source}``: around ``fetch_media`` (http, data, file) or the upload read.
- ``aurora_media_preprocess_seconds``: decode + frame sampling + CLIP preprocessing, approximated by
  SGLang's tokenization phase of the request (our processor runs there): ``meta_info`` timestamps
  ``request_received_ts`` → ``api_server_dispatch_finish_ts`` (includes tokenizing the text, negligible).
- ``aurora_prefill_seconds``: vision encoding + projector + LLM prefill: ``forward_entry_time`` →
  ``prefill_finished_time``; the vision tower runs inside prefill, so it is not split out further.
- ``aurora_visual_tokens`` per request, ``aurora_token_kept_ratio`` per media item,
  ``aurora_request_output_tokens`` per request, ``aurora_cached_tokens_total``.
- Gauges ``aurora_requests_in_flight``: generation requests holding a concurrency slot (taken before the
  body is read, given back after the last byte); ``aurora_requests_queued``: those waiting for a slot plus
  those with a parsed body and no first token yet (fetching, decoding, waiting for or in prefill). An admitted
  request still reading or parsing its body is in the first gauge only.

SGLang's metrics (``--enable-sglang-metrics``): its scheduler processes write to the multiprocess directory,
read with ``MultiProcessCollector``; its tokenizer-side metrics live in this process's default registry
(prometheus_client was imported before that directory existed). Both are merged in, ``sglang:*`` only.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
TOKENS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
RATIO = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, sglang_dir: str | None = None):
        """``sglang_dir``: SGLang's multiprocess metrics directory, or None to leave its metrics out."""
        self.sglang_dir = sglang_dir
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("aurora_requests", "API responses by endpoint and HTTP status",
                                ["endpoint", "status"], registry=r)
        self.ttft = Histogram("aurora_time_to_first_token_seconds", "Parsed request to first generated token",
                              ["endpoint"], buckets=LATENCY, registry=r)
        self.e2e = Histogram("aurora_e2e_request_latency_seconds", "Parsed request to last generated token",
                             ["endpoint"], buckets=LATENCY, registry=r)
        self.tpot = Histogram("aurora_time_per_output_token_seconds", "Decode time per output token after the first",
                              ["endpoint"], buckets=PER_TOKEN, registry=r)
        self.output_tokens = Histogram("aurora_request_output_tokens", "Generated tokens per request",
                                       buckets=TOKENS, registry=r)
        self.fetch = Histogram("aurora_media_fetch_seconds", "Media fetch time per item", ["source"],
                               buckets=LATENCY, registry=r)
        self.preprocess = Histogram("aurora_media_preprocess_seconds",
                                    "Decode + CLIP preprocessing per request (SGLang tokenization phase)",
                                    buckets=LATENCY, registry=r)
        self.prefill = Histogram("aurora_prefill_seconds", "Vision encode + LLM prefill per request (approx.)",
                                 buckets=LATENCY, registry=r)
        self.visual_tokens = Histogram("aurora_visual_tokens", "Visual tokens per request", buckets=TOKENS, registry=r)
        self.kept_ratio = Histogram("aurora_token_kept_ratio", "token_kept_ratio per media item", ["kind"],
                                    buckets=RATIO, registry=r)
        self.cached_tokens = Counter("aurora_cached_tokens", "Prompt tokens served from the prefix cache", registry=r)
        self.in_flight = Gauge("aurora_requests_in_flight", "Generation requests holding a concurrency slot",
                               registry=r)
        self.queued = Gauge("aurora_requests_queued",
                            "Generation requests waiting for a slot, or admitted without a first token yet", registry=r)

    def observe_engine_timings(self, meta: dict) -> None:
        """Preprocess / prefill split from SGLang's per-request timestamps, when it reports them."""
        stages = _stage_seconds(meta)
        if stages.get("preprocess") is not None:
            self.preprocess.observe(stages["preprocess"])
        if stages.get("prefill") is not None:
            self.prefill.observe(stages["prefill"])

    def render(self) -> bytes:
        body = generate_latest(self.registry)
        if self.sglang_dir is not None:
            body += generate_latest(_SGLangCollectorRegistry(self.sglang_dir))
        return body


def _stage_seconds(meta: dict) -> dict[str, float | None]:
    """Seconds per stage from SGLang 0.5.23's meta_info timestamps (absent keys → None).

    preprocess: request received → dispatched to the scheduler (our processor: decode, sample, CLIP).
    prefill: scheduler's forward entry → prefill finished (vision tower + projector + LLM prefill).
    """
    def span(start: str, end: str) -> float | None:
        a, b = meta.get(start), meta.get(end)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)):
            return None
        return max(0.0, float(b) - float(a))

    return {"preprocess": span("request_received_ts", "api_server_dispatch_finish_ts"),
            "prefill": span("forward_entry_time", "prefill_finished_time")}


class _SGLangCollectorRegistry:
    """A one-shot 'registry' for ``generate_latest``: SGLang's families from both of their homes, deduplicated."""

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        from prometheus_client import multiprocess

        seen: set[str] = set()
        merged = CollectorRegistry()
        try:
            multiprocess.MultiProcessCollector(merged, path=self.path)
            sources = [merged, REGISTRY]
        except ValueError:  # the directory vanished (engine shut down)
            sources = [REGISTRY]
        for source in sources:
            for family in source.collect():
                if family.name.startswith("sglang:") and family.name not in seen:
                    seen.add(family.name)
                    yield family
