"""What uvicorn bounds for us: connections, header size and time, keep-alive.

uvicorn (0.54) limits how many connections get an answer (``limit_concurrency``: past it, its own plain-text
503; it counts idle connections too, so probes get it as well), how large a request's headers may grow while
incomplete (h11's ``max_incomplete_event_size``: past it, its own 400; a complete header block that arrives in
one socket read — asyncio reads up to 256 KiB — is parsed whole) and how long an idle keep-alive connection
stays open (``timeout_keep_alive``). It has no deadline for the headers
themselves: a client that connects and sends a byte now and then holds its socket forever (any byte cancels
the keep-alive timer). ``HeaderDeadlineH11`` adds one: a connection must deliver a request's complete headers
within ``--header-timeout`` of connecting or of its previous response, or it is closed. Bodies have their
own deadlines in the gate (:mod:`aurora_serve.api.body`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from aurora_serve.config import ServerSettings

MAX_HEADER_BYTES = 16 * 1024  # h11's own default, pinned here so an upgrade cannot move it silently
KEEP_ALIVE_S = 5  # uvicorn's default: idle keep-alive connections are closed after this


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    def __init__(self, *args, header_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's headers get the same time, counted from now

    def connection_lost(self, exc) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self._header_timeout, self._expire)

    def _expire(self) -> None:
        # a request whose headers arrived has a cycle that is not complete: the gate times its body
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()


def uvicorn_limits(settings: ServerSettings) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that bound connections."""
    return {
        "http": functools.partial(HeaderDeadlineH11, header_timeout=settings.header_timeout),
        "limit_concurrency": settings.max_connections or None,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
