"""Which ``Host`` and ``Origin`` a key-less server answers: the DNS-rebinding and cross-site-post guard. Pure.

Without API keys, anything that can make a browser send a request to the server can use it. Two ways in:

- **DNS rebinding**: a page at ``http://evil.example:8000`` re-points its own name at 127.0.0.1; the browser
  then treats our API as same-origin with the attacker's page, but still sends ``Host: evil.example:8000``.
  So a request's ``Host`` must be a name we know: ``localhost`` (and ``*.localhost``, which browsers resolve
  to loopback themselves), the name the server was bound to, or one in ``--allowed-hosts``. An IP literal is
  always accepted: a browser that sends one reached that address by that address, not through a rebound
  name (so ``curl http://10.0.0.5:8000/v1/...`` keeps working).
- **Cross-site posts**: a page elsewhere posts a form or a ``fetch`` to us. Browsers mark those with an
  ``Origin`` header; a POST whose ``Origin`` is not this server's host and port (the scheme only fills in a
  default port: TLS may end at a proxy) and whose host is not in ``--allowed-hosts`` is refused (``*`` there
  lifts the Host check, not this one). curl and the SDKs send no ``Origin``; the playground is same-origin.

The gate applies both to ``/v1`` only, where the API key would apply; probes and scrapes are unaffected.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from aurora_serve.media.addresses import HOSTNAME, name_listed

_DEFAULT_PORT = {"http": 80, "https": 443}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@functools.lru_cache(maxsize=8)
def parse_allowed(entries: tuple[str, ...]) -> frozenset[str]:
    """Lower-case names without a trailing dot; ".example.com" matches subdomains, "*" any name.
    Raises ValueError on an entry that is none of these (a URL, a port, a space)."""
    names = set()
    for entry in entries:
        name = entry.strip().lower().rstrip(".")
        if name != "*" and not HOSTNAME.match(name):
            raise ValueError(f"{entry!r} is not a host name ('.example.com' for subdomains, '*' for any)")
        names.add(name)
    return frozenset(names)


def allowed_names(configured: tuple[str, ...], bound_host: str) -> frozenset[str]:
    """``--allowed-hosts`` plus the name the server was bound to (``--host``), unless that is an IP literal."""
    bound = () if _is_ip(bound_host.strip("[]")) else (bound_host,)
    return parse_allowed((*configured, *bound))


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host``-header text → (lower-case host without brackets or trailing dot, port or None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return host.rstrip("."), int(port) if port else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _listed(host: str, allowed: frozenset[str]) -> bool:
    return "*" in allowed or name_listed(host, allowed)


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    """True when a request's ``Host`` is one we answer under (see the module docstring). No ``Host`` at all
    (HTTP/1.0 tools) is accepted: browsers always send one."""
    if host_header is None:
        return True
    parsed = split_host(host_header)
    if parsed is None:
        return False
    host = parsed[0]
    return _is_ip(host) or host == "localhost" or host.endswith(".localhost") or _listed(host, allowed)


def origin_allowed(origin: str, host_header: str | None, scheme: str, allowed: frozenset[str]) -> bool:
    """True when ``Origin`` is this server's own origin, as the request reached it (``Host`` + ``scheme``), or
    names an allowed host. ``null`` (sandboxed frames, file: pages) and malformed origins are refused."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in _DEFAULT_PORT or not parts.hostname:
        return False
    try:
        origin_port = parts.port or _DEFAULT_PORT[parts.scheme]
    except ValueError:
        return False
    if _listed(parts.hostname.rstrip("."), allowed - {"*"}):  # "*" lifts the Host check only
        return True
    own = split_host(host_header) if host_header is not None else None
    if own is None:
        return False
    return (parts.hostname.rstrip("."), origin_port) == (own[0], own[1] or _DEFAULT_PORT.get(scheme, 80))
