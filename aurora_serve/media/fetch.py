"""Fetch media bytes from a URL under byte, time, scheme and address limits (the SSRF guard).

Schemes: ``data:`` (base64 only), ``http(s)``, and ``file://`` only when ``allowed_local_media_path`` is
set. For http(s) every hop (the first request and each redirect, followed by hand) is checked the same way:
scheme on the allow-list, host resolved *once*, every resolved address public or in ``allow_hosts``.

DNS pinning: the request goes to the checked IP literal (the URL's host is rewritten to it) with the original
``Host`` header and, for https, the original name as SNI via httpx's ``sni_hostname`` extension, against which
httpcore also verifies the certificate. httpx never resolves the name, so a second (rebinding) DNS answer
cannot move the connection. Requests go straight to an httpx transport, not an ``AsyncClient``: no client
redirect handling (it parses ``Location`` before we could check it), no proxies from the environment, no
cookies between hops.

Refused addresses: unspecified, loopback, link-local (incl. cloud metadata 169.254.169.254), multicast,
private, reserved, and anything else not globally routable - notably CGNAT 100.64.0.0/10 (Alibaba Cloud's
metadata service lives at 100.100.100.200). IPv4 embedded in IPv6 (mapped ``::ffff:a.b.c.d``, compatible
``::a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import ipaddress
import os
import re
import socket
import stat
from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import anyio
import httpx

from aurora_serve.errors import InvalidRequestError, MediaFetchError, MediaTooLargeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_REDIRECTS = (301, 302, 303, 307, 308)
_HOSTNAME = re.compile(r"^\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
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


@functools.lru_cache(maxsize=32)
def parse_allow_hosts(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """Split allow-list entries into networks ("10.0.0.0/8", "127.0.0.1" = /32) and lower-case hostnames.
    Raises ValueError on an entry that is neither."""
    nets, names = [], set()
    for entry in entries:
        text = entry.strip().lower()
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        if not _HOSTNAME.match(text.rstrip(".")):
            raise ValueError(f"allow_hosts: {entry!r} is neither a CIDR, an IP address nor a hostname")
        names.add(text.rstrip("."))
    return tuple(nets), frozenset(names)


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), else None."""
    if ip.version == 4:
        return None
    packed = int(ip)
    if ip in _NAT64 or (packed >> 32 == 0 and packed > 1):  # ::a.b.c.d (:: and ::1 are judged as IPv6)
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def check_address(address: str | IPAddress, allowed: tuple[IPNetwork, ...] = ()) -> str | None:
    """Why ``address`` must not be contacted ("loopback", "private", ...), or None when it may be.

    Addresses inside an ``allowed`` network are always permitted. Pure: no DNS, no sockets."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    inner = _embedded_v4(ip)
    if inner is not None:
        return check_address(inner, allowed)
    for reason in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{reason}"):
            return reason.replace("_", "-")
    return None if ip.is_global else "not globally routable"


async def fetch_media(url: str, limits: FetchLimits, *, resolver=None, transport=None) -> bytes:
    """Return the bytes ``url`` points at, or raise an ``AuroraError`` (400/413; never a raw exception).

    ``resolver(host, port)`` (sync or async) returns IP strings; default: the system resolver.
    ``transport``: an httpx async transport (tests)."""
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme == "data" and "data" in limits.allowed_schemes:
        return decode_data_url(url, limits)
    if scheme == "file":
        return await _read_file_url(url, limits)
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


def decode_data_url(url: str, limits: FetchLimits) -> bytes:
    """A base64 ``data:`` URL's bytes; the payload size is checked before anything is decoded."""
    header, comma, payload = url.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise InvalidRequestError("data: URLs must be base64-encoded (data:<type>;base64,<payload>)")
    if len(payload) > limits.max_data_url_bytes:  # before decoding: never allocate the decoded copy
        raise MediaTooLargeError(f"data: URL payload is {len(payload)} bytes; the limit is {limits.max_data_url_bytes}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("data: URL payload is not valid base64") from None
    if not data:
        raise MediaFetchError("data: URL payload is empty")
    if len(data) > limits.max_bytes:
        raise MediaTooLargeError(f"media is {len(data)} bytes; the limit is {limits.max_bytes}")
    return data


async def _read_file_url(url: str, limits: FetchLimits) -> bytes:
    if limits.allowed_local_media_path is None:
        raise InvalidRequestError("file:// media URLs are disabled on this server; send an http(s) or base64 data: URL")
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/") or "\x00" in path:
        raise InvalidRequestError("file:// media URL must be an absolute local path (file:///path/to/video.mp4)")
    root = os.path.realpath(limits.allowed_local_media_path)
    real = os.path.realpath(path)  # symlinks and ".." resolved before the containment check
    if os.path.commonpath([root, real]) != root:
        raise InvalidRequestError("file:// media URL is outside the directory this server may read from")
    return await anyio.to_thread.run_sync(_read_regular_file, real, limits.max_bytes)


def _read_regular_file(path: str, max_bytes: int) -> bytes:
    try:  # O_NONBLOCK: opening a FIFO must not hang; fstat on the open fd closes the stat/open race
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MediaFetchError(f"file:// media could not be opened: {exc.strerror or 'error'}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaFetchError("file:// media URL does not name a regular file")
        if info.st_size > max_bytes:
            raise MediaTooLargeError(f"media is {info.st_size} bytes; the limit is {max_bytes}")
        data = bytearray()
        while chunk := os.read(fd, min(8 * _MiB, max_bytes + 1 - len(data))):  # the file may have grown
            data += chunk
            if len(data) > max_bytes:
                raise MediaTooLargeError(f"media is larger than the limit of {max_bytes} bytes")
    finally:
        os.close(fd)
    return bytes(data)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


async def _pinned_addresses(url: httpx.URL, limits: FetchLimits, resolver) -> list[str]:
    """Resolve ``url``'s host once and check every address; the caller connects only to these."""
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    nets, names = parse_allow_hosts(tuple(limits.allow_hosts))
    host_allowed = host in names or any(n.startswith(".") and host.endswith(n) for n in names)
    addresses = [host] if _is_ip(host) else []  # an IP literal needs no resolution
    try:
        if not addresses:
            result = resolver(host, url.port or (443 if url.scheme == "https" else 80))
            addresses = list(await result if inspect.isawaitable(result) else result)
    except OSError as exc:
        raise MediaFetchError(f"could not resolve media host {host!r}: {exc}") from None
    if not addresses:
        raise MediaFetchError(f"could not resolve media host {host!r}")
    for address in addresses:
        if not _is_ip(address):
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
    if url.scheme == "https" and not _is_ip(host):
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
    if not 200 <= response.status_code < 300:
        raise MediaFetchError(f"media URL returned HTTP {response.status_code} {response.reason_phrase}".rstrip())
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooLargeError(f"media is {declared} bytes (Content-Length); the limit is {max_bytes}")
    chunks, total = [], 0
    async for chunk in response.aiter_bytes():  # decoded bytes are counted: a gzip bomb hits the cap too
        total += len(chunk)
        if total > max_bytes:
            raise MediaTooLargeError(f"media is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    if total == 0:
        raise MediaFetchError("media URL returned an empty body")
    return b"".join(chunks)
