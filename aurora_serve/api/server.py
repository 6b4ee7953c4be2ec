"""``aurora-serve serve``: settings → app → uvicorn, with a graceful drain on SIGTERM.

SIGTERM (or Ctrl-C): ``/ready`` turns 503 and new requests get 503 at once, while requests in flight —
streams included — get up to ``--drain-timeout`` seconds to finish; then the server stops, the engine shuts
down and the process exits 0. A second signal exits without waiting. (uvicorn's own handling would close
the listener at once — refusing connections instead of answering 503 — and re-raise the signal at exit.)
SGLang's tokenizer manager installs its own SIGTERM handler on the event loop at its first request; the
lifecycle makes that request during start-up (warm-up), after which this server takes SIGTERM back.
Requests waiting for a slot get 503 when the drain begins (they have sent nothing a retry would lose).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading

import uvicorn

from aurora_serve.api.admission import Admission
from aurora_serve.api.lifecycle import Lifecycle
from aurora_serve.api.metrics import Metrics
from aurora_serve.api.routes import create_app
from aurora_serve.api.transport import uvicorn_limits
from aurora_serve.config import ServerSettings

logger = logging.getLogger("aurora_serve")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, admission: Admission, drain_timeout: float):
        super().__init__(config)
        self.lifecycle, self.admission, self.drain_timeout = lifecycle, admission, drain_timeout
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        lifecycle.on_ready.append(self._retake_signals)
        lifecycle.on_fatal = self._fatal

    async def startup(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame=None) -> None:
        if self._draining:  # second signal: stop waiting
            self.should_exit = True
            self.force_exit = sig == signal.SIGINT
            return
        self._draining = True
        self.lifecycle.begin_drain()
        if self._loop is None:
            self.should_exit = True
        else:  # may run in signal context: hand over to the loop (wakes it too)
            self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._drain()))

    async def _drain(self) -> None:
        self.admission.shed_waiting()  # they sent nothing yet: 503 now, so they retry elsewhere
        await self.admission.wait_idle(self.drain_timeout)
        self.should_exit = True

    def _retake_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _fatal(self) -> None:
        self.exit_code = 1
        self.should_exit = True


def _metrics(settings: ServerSettings) -> tuple[Metrics, str | None]:
    """Our metrics, and the multiprocess directory the scheduler's processes write to (the model's stage
    metrics always; SGLang's own with --enable-sglang-metrics), created if we own it."""
    path, owned = settings.prometheus_multiproc_dir, None
    if path is None:
        path = owned = tempfile.mkdtemp(prefix="aurora-prometheus-")
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # written, not read: the engine's spawned processes inherit it
    return Metrics(multiproc_dir=path, sglang=settings.engine.enable_sglang_metrics), owned


def main(settings: ServerSettings) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics, owned_dir = _metrics(settings)
    app = create_app(settings, metrics=metrics)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            timeout_graceful_shutdown=5, lifespan="on", access_log=settings.log_level == "debug",
                            **uvicorn_limits(settings))
    server = DrainingServer(config, app.state.lifecycle, app.state.admission, settings.drain_timeout)
    sock = config.bind_socket()  # before the engine starts loading: a taken port fails in milliseconds
    try:
        server.run(sockets=[sock])
    finally:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
    if not server.started:
        return 1
    return server.exit_code
