"""Admission (aurora_serve.api.admission): slots, the bounded line, hand-over, drain. No server, no engine."""

from __future__ import annotations

import asyncio

import pytest

from aurora_serve.api.admission import Admission
from aurora_serve.api.metrics import Metrics
from aurora_serve.errors import RateLimitError, ServiceUnavailableError


class Phase:
    phase = "ready"

    def check_serving(self):
        if self.phase != "ready":
            raise ServiceUnavailableError(self.phase, code=self.phase)


def gauges(a: Admission) -> tuple[float, float]:
    return a.metrics.in_flight._value.get(), a.metrics.queued._value.get()


def run(coro):
    return asyncio.run(coro)


def test_slots_then_line_then_429_and_hand_over_in_order():
    async def scenario():
        a = Admission(Phase(), limit=2, queue_limit=2, metrics=Metrics())
        await a.acquire()
        await a.acquire()
        order = []

        async def wait(name):
            await a.acquire()
            order.append(name)

        waiters = [asyncio.create_task(wait(n)) for n in ("first", "second")]
        await asyncio.sleep(0)
        assert (a.in_flight, a.waiting, gauges(a)) == (2, 2, (2, 2))
        with pytest.raises(RateLimitError):
            await a.acquire()
        a.release()  # handed to "first": in_flight stays 2, the drain cannot end under the line
        await asyncio.sleep(0)
        assert (order, a.in_flight, a.waiting) == (["first"], 2, 1)
        a.release()
        await asyncio.gather(*waiters)
        assert order == ["first", "second"] and gauges(a) == (2, 0)
        for _ in range(2):
            a.release()
        assert a.in_flight == 0 and await a.wait_idle(0.1)

    run(scenario())


def test_a_cancelled_waiter_leaves_the_line_and_passes_on_a_slot():
    async def scenario():
        a = Admission(Phase(), limit=1, queue_limit=1, metrics=Metrics())
        await a.acquire()
        waiter = asyncio.create_task(a.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert a.waiting == 0 and gauges(a) == (1, 0)
        # handed a slot and cancelled before it could run: the slot goes on, it is not lost
        waiter = asyncio.create_task(a.acquire())
        await asyncio.sleep(0)
        a.release()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert a.in_flight == 0 and gauges(a) == (0, 0)

    run(scenario())


def test_drain_sheds_the_line_and_refuses_newcomers_but_waits_for_slots():
    async def scenario():
        phase = Phase()
        a = Admission(phase, limit=1, queue_limit=4, metrics=Metrics())
        await a.acquire()
        waiter = asyncio.create_task(a.acquire())
        await asyncio.sleep(0)
        phase.phase = "draining"
        a.shed_waiting()
        with pytest.raises(ServiceUnavailableError):
            await waiter
        with pytest.raises(ServiceUnavailableError):
            await a.acquire()
        assert not await a.wait_idle(0.05)  # the admitted request is still running
        a.release()
        assert await a.wait_idle(0.05) and gauges(a) == (0, 0)

    run(scenario())


def test_zero_means_unlimited():
    async def scenario():
        a = Admission(Phase(), limit=0, queue_limit=0, metrics=Metrics())
        for _ in range(1000):
            await a.acquire()
        assert a.in_flight == 1000

    run(scenario())
