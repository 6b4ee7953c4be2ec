"""The server's life: load the engine off the event loop, report health and readiness, drain on shutdown.

Phases: ``loading`` → ``ready`` → ``draining`` (SIGTERM) → stopped; ``failed`` if the engine cannot start.
``/ready`` is 200 only in ``ready``, and only then are requests admitted (``check_serving``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Callable

from aurora_serve.config import EngineSettings
from aurora_serve.engine import GenerateRequest
from aurora_serve.errors import ServiceUnavailableError

logger = logging.getLogger(__name__)
WARMUP = GenerateRequest(prompt="USER: Hello. ASSISTANT:", sampling_params={"max_new_tokens": 1, "temperature": 0.0})


class EngineThread:
    """Builds the engine in a thread of its own and keeps that thread alive until shutdown.

    SGLang's child processes are started with PR_SET_PDEATHSIG(SIGKILL), which fires when the *thread*
    that spawned them exits: a throw-away thread (or a pool worker that may retire) would take the
    scheduler down with it. So the builder thread waits here until ``stop`` and shuts the engine down itself.
    """

    def __init__(self, factory: Callable, settings: EngineSettings):
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


class Lifecycle:
    def __init__(self, settings: EngineSettings, engine_factory: Callable):
        self.settings, self._factory = settings, engine_factory
        self.phase = "loading"
        self.engine = None
        self.created = int(time.time())
        self.on_ready: list[Callable[[], None]] = []  # e.g. the server re-taking SIGTERM from SGLang
        self.on_fatal: Callable[[], None] | None = None
        self._thread: EngineThread | None = None

    async def start(self) -> None:
        """Build the engine in a thread (SGLang start-up blocks for seconds), warm it up, become ready."""
        try:
            self._thread = EngineThread(self._factory, self.settings)
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
        if self.phase == "loading":
            self.phase = "ready"
            logger.info("engine ready")
        for hook in self.on_ready:
            hook()

    def check_serving(self) -> None:
        """Raise 503 unless new requests are taken (loading, draining, failed)."""
        if self.phase != "ready":
            why = {"loading": "the model is still loading", "draining": "the server is shutting down"}
            raise ServiceUnavailableError(why.get(self.phase, "the engine is not available"), code=self.phase)

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
            logger.warning("draining")
            self.phase = "draining"

    async def stop(self) -> None:
        if self._thread is not None:
            await self._thread.stop()
            self._thread = None
