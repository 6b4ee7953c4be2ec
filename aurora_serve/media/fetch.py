"""Fetch media bytes from a URL under byte, time, scheme and address limits (the SSRF guard).

Schemes: ``data:`` (base64 only), ``http(s)``, and ``file://`` only when ``allowed_local_media_path`` is
set. For http(s) every hop (the first request and each redirect, followed by hand) is checked the same way:
scheme on the allow-list, host resolved *once*, every resolved address public or in ``allow_hosts``.

DNS pinning: the request goes to the checked IP literal (the URL's host is rewritten to it) with the original
``Host`` header and, for https, the original name as SNI via httpx's ``sni_hostname`` extension, against which
httpcore also verifies the certificate. httpx never resolves the name, so a second (rebinding) DNS answer
cannot move the connection. Requests go straight to an httpx transport, not an ``AsyncClient``: no client
redirect handling (it parses ``Location`` before we could check it), no proxies from the environment, no
cookies between hops. Bodies are read raw and counted as sent: a ``Content-Encoding`` other than identity is
refused, never decoded (no compression bombs).

The address policy is in :mod:`aurora_serve.media.addresses`; ``data:`` and ``file://`` in
:mod:`aurora_serve.media.local`.
"""

from __future__ import annotations

import inspect
import socket
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx

from aurora_serve.errors import InvalidRequestError, MediaFetchError, MediaTooLargeError
from aurora_serve.media.addresses import check_address, is_ip, name_listed, parse_allow_hosts
from aurora_serve.media.local import decode_data_url, read_file_url

_REDIRECTS = (301, 302, 303, 307, 308)
_MiB = 1024 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """Limits for one media fetch. ``allow_hosts``: CIDRs / IPs / hostnames exempt from the address block
    (a hostname starting with "." also matches its subdomains). ``allowed_schemes`` may hold http, https,
    data; ``file://`` is governed only by ``allowed_local_media_path`` (None: refused)."""

    max_bytes: int = 256 * _MiB
    max_data_url_bytes: int = 64 * _MiB  # encoded length of a data: URL payload
    connect_timeout: float = 5.0
    total_timeout: float = 30.0  # whole fetch: resolution, every redirect hop, the body
    max_redirects: int = 3
    allowed_schemes: tuple[str, ...] = ("http", "https", "data")
    allow_hosts: tuple[str, ...] = ()
    allowed_local_media_path: str | None = None

    def __post_init__(self):
        unknown = set(self.allowed_schemes) - {"http", "https", "data"}
        if unknown:
            raise ValueError(f"allowed_schemes: {sorted(unknown)} unsupported (file:// is allowed_local_media_path)")
        if min(self.max_bytes, self.max_data_url_bytes, self.max_redirects + 1) <= 0:
            raise ValueError("max_bytes and max_data_url_bytes must be > 0, max_redirects >= 0")
        parse_allow_hosts(tuple(self.allow_hosts))  # fail at startup, not on the first request


async def fetch_media(url: str, limits: FetchLimits, *, resolver=None, transport=None) -> bytes:
    """Return the bytes ``url`` points at, or raise an ``AuroraError`` (400/413; never a raw exception).

    ``resolver(host, port)`` (sync or async) returns IP strings; default: the system resolver.
    ``transport``: an httpx async transport (tests)."""
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme == "data" and "data" in limits.allowed_schemes:
        return decode_data_url(url, limits.max_bytes, limits.max_data_url_bytes)
    if scheme == "file":
        return await read_file_url(url, limits.allowed_local_media_path, limits.max_bytes)
    _check_scheme(scheme, limits, url_kind="media URL")
    try:
        with anyio.fail_after(limits.total_timeout):
            return await _fetch_http(url, limits, resolver or _system_resolver, transport)
    except TimeoutError:
        raise MediaFetchError(f"fetching the media URL took longer than {limits.total_timeout:g} s") from None


def _check_scheme(scheme: str, limits: FetchLimits, url_kind: str) -> None:
    if scheme not in ("http", "https") or scheme not in limits.allowed_schemes:
        allowed = ", ".join(s + ":" for s in limits.allowed_schemes)
        error = InvalidRequestError if url_kind == "media URL" else MediaFetchError
        raise error(f"unsupported URL scheme {scheme + ':' if scheme else '(none)'} in {url_kind}; allowed: {allowed}")


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


async def _pinned_addresses(url: httpx.URL, limits: FetchLimits, resolver) -> list[str]:
    """Resolve ``url``'s host once and check every address; the caller connects only to these."""
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    nets, names = parse_allow_hosts(tuple(limits.allow_hosts))
    host_allowed = name_listed(host, names)
    addresses = [host] if is_ip(host) else []  # an IP literal needs no resolution
    try:
        if not addresses:
            result = resolver(host, url.port or (443 if url.scheme == "https" else 80))
            addresses = list(await result if inspect.isawaitable(result) else result)
    except OSError as exc:
        raise MediaFetchError(f"could not resolve media host {host!r}: {exc}") from None
    if not addresses:
        raise MediaFetchError(f"could not resolve media host {host!r}")
    for address in addresses:
        if not is_ip(address):
            raise MediaFetchError(f"resolver returned a non-address for media host {host!r}")
        reason = None if host_allowed else check_address(address, nets)
        if reason is not None:  # the address itself is not echoed: no probing of internal DNS
            raise MediaFetchError(f"media host {host!r} resolves to a {reason} address; refused")
    return addresses


async def _fetch_http(url: str, limits: FetchLimits, resolver, transport) -> bytes:
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequestError(f"invalid media URL: {exc}") from None
    timeout = httpx.Timeout(limits.total_timeout, connect=limits.connect_timeout).as_dict()
    seen: set[str] = set()
    own = transport is None
    transport = httpx.AsyncHTTPTransport() if own else transport
    try:
        for _ in range(limits.max_redirects + 1):
            if not current.host or not 0 < (current.port or 80) < 65536:
                raise InvalidRequestError("media URL has no host or an invalid port")
            seen.add(str(current))
            addresses = await _pinned_addresses(current, limits, resolver)
            response = await _send_pinned(transport, current, addresses, timeout)
            async with aclosing(response):  # an unread body closes the connection instead of draining it
                if response.status_code not in _REDIRECTS:
                    return await _read_body(response, limits.max_bytes)
                location = response.headers.get("location")
            if not location:
                raise MediaFetchError(f"media URL redirected (HTTP {response.status_code}) without a Location")
            _check_scheme(urlsplit(location).scheme.lower() or current.scheme, limits, url_kind="redirect")
            current = current.join(location)
            if str(current) in seen:
                raise MediaFetchError("media URL redirects in a loop")
        raise MediaFetchError(f"media URL redirected more than {limits.max_redirects} times")
    except httpx.InvalidURL as exc:
        raise MediaFetchError(f"media URL redirected to an invalid URL: {exc}") from None
    except httpx.TimeoutException:
        raise MediaFetchError("timed out fetching the media URL") from None
    except httpx.ConnectError:
        raise MediaFetchError("could not connect to the media host") from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise MediaFetchError(f"fetching the media URL failed ({type(exc).__name__}: {exc})") from None
    finally:
        if own:
            with anyio.CancelScope(shield=True):  # close sockets even when the deadline cancelled us
                await transport.aclose()


async def _send_pinned(transport, url: httpx.URL, addresses: list[str], timeout: dict) -> httpx.Response:
    """GET from the first checked address that accepts a connection; the name goes in Host and SNI."""
    host = url.raw_host.decode("ascii")
    netloc = f"[{host}]" if ":" in host else host
    port = "" if url.port is None else f":{url.port}"
    headers = {"Host": netloc + port, "Accept-Encoding": "identity", "User-Agent": "aurora-serve"}
    extensions = {"timeout": timeout}
    if url.scheme == "https" and not is_ip(host):
        extensions["sni_hostname"] = host  # httpcore also verifies the certificate against this name
    for i, address in enumerate(addresses):
        request = httpx.Request("GET", url.copy_with(host=address), headers=headers, extensions=extensions)
        try:
            response = await transport.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if i == len(addresses) - 1:
                raise
            continue
        response.request = request
        return response
    raise AssertionError("unreachable: addresses is never empty")


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """The body as sent. We ask for ``Accept-Encoding: identity``, and refuse any other ``Content-Encoding``
    instead of decoding it: httpx would inflate gzip/deflate (and brotli/zstd where those packages are
    installed) before we could count, and media formats are compressed already."""
    if not 200 <= response.status_code < 300:
        raise MediaFetchError(f"media URL returned HTTP {response.status_code} {response.reason_phrase}".rstrip())
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise MediaFetchError(f"the media URL answered with Content-Encoding {encoding!r}; this server asks for "
                              "and accepts only unencoded (identity) bytes")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooLargeError(f"media is {declared} bytes (Content-Length); the limit is {max_bytes}")
    chunks, total = [], 0
    async for chunk in response.aiter_raw():  # the bytes on the wire, never decoded
        total += len(chunk)
        if total > max_bytes:
            raise MediaTooLargeError(f"media is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    if total == 0:
        raise MediaFetchError("media URL returned an empty body")
    return b"".join(chunks)
