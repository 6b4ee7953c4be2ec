"""Admission of generation requests: concurrency slots, a bounded wait queue, and what the drain waits for.

The gate admits a generation request *before* it reads the body, so a request that is refused (429 past
``--max-concurrency`` + ``--max-queue``, 503 while loading or draining) never held its body in memory, and a
queued one holds only its socket and what uvicorn buffers before it pauses reading (64 KiB). The gate
releases the slot once the ASGI call returns — for a stream, after its last byte — in one ``finally``.

A freed slot is handed straight to the oldest waiter, so ``in_flight`` never dips to zero while requests
wait, and the drain (``wait_idle``) cannot end under them. When a drain begins, waiters get 503 at once
(``shed_waiting``): they have sent nothing yet that a retry elsewhere would lose.

Gauges: ``aurora_requests_in_flight`` = requests holding a slot; waiters are added to
``aurora_requests_queued`` (which also counts admitted requests without a first token, see ``serving``).
"""

from __future__ import annotations

import asyncio
import collections
import logging

from aurora_serve.api.lifecycle import Lifecycle
from aurora_serve.api.metrics import Metrics
from aurora_serve.errors import RateLimitError, ServiceUnavailableError

logger = logging.getLogger(__name__)


class Admission:
    def __init__(self, lifecycle: Lifecycle, limit: int, queue_limit: int, metrics: Metrics):
        """``limit``: slots (0: unlimited); ``queue_limit``: requests that may wait for one."""
        self.lifecycle, self.limit, self.queue_limit, self.metrics = lifecycle, limit, queue_limit, metrics
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if all are taken; 503 unless serving, 429 when the line is full."""
        self.lifecycle.check_serving()
        if not self.limit or (self.in_flight < self.limit and not self._waiters):
            self._take()
            return
        if len(self._waiters) >= self.queue_limit:
            raise RateLimitError(f"the server is at its limit of {self.limit} concurrent requests and "
                                 f"{self.queue_limit} waiting; retry shortly")
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self.metrics.queued.inc()
        try:
            await turn  # release() hands this request a slot (or shed_waiting refuses it)
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.release()  # the slot arrived as we were cancelled: pass it on
            elif turn in self._waiters:
                self._waiters.remove(turn)
            raise
        finally:
            self.metrics.queued.dec()

    def release(self) -> None:
        """Give the slot to the oldest waiter, or free it."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)
        if self.in_flight == 0:
            self._idle.set()

    def shed_waiting(self) -> None:
        """Refuse every waiter with 503 (the server is draining)."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_exception(ServiceUnavailableError("the server is shutting down", code="draining"))

    async def wait_idle(self, timeout: float) -> bool:
        """True when every admitted request finished within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            logger.warning("drain timeout: %d request(s) still in flight", self.in_flight)
            return False

    def _take(self) -> None:
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        self._idle.clear()
