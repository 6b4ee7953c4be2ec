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
- Stage metrics, measured where the work happens (``model/stage_metrics.py``): per media item prepared,
  ``aurora_media_decode_seconds{kind}``, ``aurora_media_preprocess_seconds{kind}`` (resize + crop),
  ``aurora_media_frames_decoded{kind}``, ``aurora_media_handoff_bytes{kind}`` (pixels sent to the scheduler)
  and ``aurora_media_cache_requests_total{result}``, in this process; per forward in the scheduler,
  ``aurora_vision_seconds`` (vision tower + projector), ``aurora_merge_seconds`` (token merging in it) and
  ``aurora_prefill_seconds`` (the model's forward of a prefill batch), read from the multiprocess directory.
- ``aurora_visual_tokens`` per request, ``aurora_token_kept_ratio`` per media item,
  ``aurora_request_output_tokens`` per request, ``aurora_cached_tokens_total``.
- Gauges ``aurora_requests_in_flight``: generation requests holding a concurrency slot (taken before the
  body is read, given back after the last byte); ``aurora_requests_queued``: those waiting for a slot plus
  those with a parsed body and no first token yet (fetching, decoding, waiting for or in prefill). An admitted
  request still reading or parsing its body is in the first gauge only.

The scheduler writes to the multiprocess directory (the server always makes one), read with
``MultiProcessCollector``; this process's own samples live in its default registry (prometheus_client was
imported before that directory existed). SGLang's ``sglang:*`` metrics come from both places too, with
``--enable-sglang-metrics``.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from aurora_serve.model import stage_metrics

LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
TOKENS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
RATIO = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiproc_dir: str | None = None, sglang: bool = False):
        """``multiproc_dir``: where the scheduler writes its samples (None: leave them out); ``sglang``: merge
        SGLang's own metrics in too."""
        self.multiproc_dir, self.sglang = multiproc_dir, sglang
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
        self.visual_tokens = Histogram("aurora_visual_tokens", "Visual tokens per request", buckets=TOKENS, registry=r)
        self.kept_ratio = Histogram("aurora_token_kept_ratio", "token_kept_ratio per media item", ["kind"],
                                    buckets=RATIO, registry=r)
        self.cached_tokens = Counter("aurora_cached_tokens", "Prompt tokens served from the prefix cache", registry=r)
        self.in_flight = Gauge("aurora_requests_in_flight", "Generation requests holding a concurrency slot",
                               registry=r)
        self.queued = Gauge("aurora_requests_queued",
                            "Generation requests waiting for a slot, or admitted without a first token yet", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(_Merged(self.multiproc_dir, self.sglang))


class _Merged:
    """A one-shot 'registry' for ``generate_latest``: the processor's stage metrics from this process's default
    registry, the model's from the multiprocess directory (the scheduler's), and SGLang's from both."""

    def __init__(self, path: str | None, sglang: bool):
        self.path, self.sglang = path, sglang

    def collect(self):
        from prometheus_client import multiprocess

        local, shared = list(REGISTRY.collect()), []
        if self.path is not None:
            merged = CollectorRegistry()
            try:
                multiprocess.MultiProcessCollector(merged, path=self.path)
                shared = list(merged.collect())
            except ValueError:  # the directory vanished (engine shut down)
                pass
        yield from (f for f in local if f.name in stage_metrics.PROCESSOR_FAMILIES)
        yield from (f for f in shared if f.name in stage_metrics.MODEL_FAMILIES)
        if self.sglang:
            seen: set[str] = set()
            for family in shared + local:
                if family.name.startswith("sglang:") and family.name not in seen:
                    seen.add(family.name)
                    yield family
