"""The server's life: load the engine off the event loop, admit requests, drain on shutdown.

Phases: ``loading`` → ``ready`` → ``draining`` (SIGTERM) → stopped; ``failed`` if the engine cannot start.
``/ready`` is 200 only in ``ready``. Admission (``admit``) refuses with 503 outside ``ready`` and with 429
(+ Retry-After) past ``--max-concurrency``; each admitted request holds a ``Ticket`` until its last byte,
which also times it for the metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Callable

from aurora_serve.api.metrics import Metrics
from aurora_serve.api.service import ChatService
from aurora_serve.config import ServerSettings
from aurora_serve.engine import GenerateRequest
from aurora_serve.errors import RateLimitError, ServiceUnavailableError

logger = logging.getLogger(__name__)
WARMUP = GenerateRequest(prompt="USER: Hello. ASSISTANT:", sampling_params={"max_new_tokens": 1, "temperature": 0.0})


class Ticket:
    """One admitted generation request: holds its concurrency slot and records its latencies."""

    def __init__(self, runtime: "Runtime", endpoint: str):
        self.runtime, self.endpoint = runtime, endpoint
        self.start = time.perf_counter()
        self.first: float | None = None
        self.released = False
        runtime.metrics.queued.inc()

    def first_token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.runtime.metrics.ttft.labels(self.endpoint).observe(self.first - self.start)
            self.runtime.metrics.queued.dec()

    def finished(self, completion_tokens: int) -> None:
        end = time.perf_counter()
        m = self.runtime.metrics
        m.e2e.labels(self.endpoint).observe(end - self.start)
        m.output_tokens.observe(completion_tokens)
        if self.first is not None and completion_tokens > 1:
            m.tpot.labels(self.endpoint).observe((end - self.first) / (completion_tokens - 1))

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.first is None:
            self.runtime.metrics.queued.dec()
        self.runtime._release()


class EngineThread:
    """Builds the engine in a thread of its own and keeps that thread alive until shutdown.

    SGLang's child processes are started with PR_SET_PDEATHSIG(SIGKILL), which fires when the *thread*
    that spawned them exits: a throw-away thread (or a pool worker that may retire) would take the
    scheduler down with it. So the builder thread waits here until ``stop`` and shuts the engine down itself.
    """

    def __init__(self, factory: Callable, settings):
        self._factory, self._settings = factory, settings
        self._built: concurrent.futures.Future = concurrent.futures.Future()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aurora-engine", daemon=True)

    def _run(self) -> None:
        try:
            engine = self._factory(self._settings)
        except BaseException as e:  # handed to the awaiting coroutine
            self._built.set_exception(e)
            return
        self._built.set_result(engine)
        self._stop.wait()
        engine.shutdown()

    async def start(self):
        self._thread.start()
        return await asyncio.wrap_future(self._built)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)


class Runtime:
    def __init__(self, settings: ServerSettings, metrics: Metrics, engine_factory: Callable):
        self.settings, self.metrics, self._factory = settings, metrics, engine_factory
        self.phase = "loading"
        self.engine = None
        self.service: ChatService | None = None
        self.in_flight = 0
        self.created = int(time.time())
        self.on_ready: list[Callable[[], None]] = []  # e.g. the server re-taking SIGTERM from SGLang
        self.on_fatal: Callable[[], None] | None = None
        self._idle: asyncio.Event | None = None
        self._thread: EngineThread | None = None

    async def start(self) -> None:
        """Build the engine in a thread (SGLang start-up blocks for seconds), warm it up, become ready."""
        try:
            self._thread = EngineThread(self._factory, self.settings.engine_settings())
            self.engine = await self._thread.start()
            # The first generation binds SGLang's tokenizer manager to this loop (and installs its signal
            # handlers); doing it here keeps that out of the first user's request.
            await self.engine.generate(WARMUP)
        except Exception:
            logger.exception("the engine failed to start")
            self.phase = "failed"
            if self.on_fatal is not None:
                self.on_fatal()
            return
        self.service = ChatService(self.settings, self.engine, self.metrics)
        if self.phase == "loading":
            self.phase = "ready"
            logger.info("engine ready: serving %s", self.settings.served_model_name)
        for hook in self.on_ready:
            hook()

    def admit(self, endpoint: str) -> Ticket:
        if self.phase != "ready":
            why = {"loading": "the model is still loading", "draining": "the server is shutting down"}
            raise ServiceUnavailableError(why.get(self.phase, "the engine is not available"), code=self.phase)
        limit = self.settings.max_concurrency
        if limit and self.in_flight >= limit:
            raise RateLimitError(f"the server is at its limit of {limit} concurrent requests; retry shortly")
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        if self._idle is not None:
            self._idle.clear()
        return Ticket(self, endpoint)

    def _release(self) -> None:
        self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    def health(self) -> None:
        """Raise 503 when the process can no longer serve (failed start, a dead SGLang child)."""
        if self.phase == "failed":
            raise ServiceUnavailableError("the engine failed to start", code="failed")
        if self.engine is not None:
            self.engine.check_alive()

    def readiness(self) -> None:
        """Raise 503 unless new requests are being taken (for load balancers and k8s readiness probes)."""
        if self.phase != "ready":
            raise ServiceUnavailableError(f"not ready: {self.phase}", code=self.phase)

    def begin_drain(self) -> None:
        if self.phase in ("loading", "ready"):
            logger.warning("draining: %d request(s) in flight", self.in_flight)
            self.phase = "draining"

    async def wait_idle(self, timeout: float) -> bool:
        """True when every admitted request finished within ``timeout`` seconds."""
        self._idle = asyncio.Event()
        if self.in_flight == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            logger.warning("drain timeout: %d request(s) still in flight", self.in_flight)
            return False

    async def stop(self) -> None:
        if self._thread is not None:
            await self._thread.stop()
            self._thread = None
