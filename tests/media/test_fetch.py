"""Tests for aurora_serve.media.fetch: limits, schemes, the SSRF guard and DNS pinning.

Network rule: traffic goes only to loopback servers started here. Hostnames other than "localhost" are
answered by an injected resolver; a request to any non-loopback address is answered in-process by
``GuardTransport`` (never sent), so even a broken implementation cannot reach the outside.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aurora_serve.errors import AuroraError, InvalidRequestError, MediaFetchError, MediaTooLargeError
from aurora_serve.media import fetch as fetch_mod
from aurora_serve.media.fetch import FetchLimits, check_address, fetch_media, parse_allow_hosts

BODY = b"hello media"
MiB = 1024 * 1024
LOCAL = FetchLimits(allow_hosts=("127.0.0.1/32",), connect_timeout=1.0, total_timeout=5.0)


def fetch(url, limits=LOCAL, **kwargs) -> bytes:
    return asyncio.run(fetch_media(url, limits, **kwargs))


# ---------------------------------------------------------------------------------------------- servers
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Host")))
        parts = urlsplit(self.path)
        route = getattr(self, "route_" + parts.path.strip("/").split("/")[0].replace("-", "_"), None)
        (route or self.route_missing)(parts)

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def route_small(self, parts):
        self.send(200, BODY + self.server.tag)

    def route_echo_host(self, parts):
        self.send(200, f"{self.server.tag.decode()}|{self.headers.get('Host')}".encode())

    def route_missing(self, parts):
        self.send(404, b"not here")

    def route_redirect(self, parts):  # /redirect/N -> /redirect/N-1 -> ... -> /small
        n = int(parts.path.rsplit("/", 1)[1])
        self.send(302, headers=[("Location", f"/redirect/{n - 1}" if n > 1 else "/small")])

    def route_loop_a(self, parts):
        self.send(302, headers=[("Location", "/loop-b")])

    def route_loop_b(self, parts):
        self.send(302, headers=[("Location", "/loop-a")])

    def route_to(self, parts):  # /to?url=<absolute URL>
        self.send(302, headers=[("Location", parse_qs(parts.query)["url"][0])])

    def route_no_location(self, parts):
        self.send(302)

    def route_lying_short(self, parts):  # promises 1000 bytes, sends 10, closes
        self.send(200, b"0123456789", headers=[("Content-Length", "1000")])

    def route_declared_huge(self, parts):
        self.send(200, b"x" * 1024, headers=[("Content-Length", str(10 * 1024**3))])

    def route_gzip_bomb(self, parts):
        self.send(200, gzip.compress(b"\0" * (8 * MiB)), headers=[("Content-Encoding", "gzip")])

    def route_chunked_huge(self, parts):  # 64 MiB in 64 KiB chunks; records how far it got
        stats = self.server.stats
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"z" * 65536
        try:
            for _ in range(1024):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                stats["sent"] += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
            stats["finished"] = True
        except OSError:
            stats["aborted"] = True
        finally:
            self.close_connection = True
            stats["done"].set()

    def route_slow(self, parts):  # 100 bytes, one every 50 ms: no single read is slow, the whole is
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"s")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host="127.0.0.1", port=0, tag=b"", tls=None):
        self.log, self.tag, self.sni = [], tag, []
        self.stats = {"sent": 0, "finished": False, "aborted": False, "done": threading.Event()}
        super().__init__((host, port), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self.connections = 0  # accepted sockets, counted before any request is read
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def get_request(self):
        accepted = super().get_request()
        self.connections += 1
        return accepted

    def url(self, path, host=None, scheme="http"):
        return f"{scheme}://{host or self.server_address[0]}:{self.port}{path}"


@pytest.fixture
def servers():
    started = []

    def start(**kwargs):
        started.append(Server(**kwargs))
        return started[-1]

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def server(servers):
    return servers()


def twin_servers(servers):
    """Servers on 127.0.0.1 and 127.0.0.2 with the same port (so only the address tells them apart)."""
    for _ in range(20):
        other = servers(host="127.0.0.2", tag=b"@127.0.0.2")
        try:
            return servers(host="127.0.0.1", port=other.port, tag=b"@127.0.0.1"), other
        except OSError:
            continue
    pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")


class GuardTransport(httpx.AsyncBaseTransport):
    """Records every request; forwards loopback ones, answers any other address itself (no traffic)."""

    def __init__(self):
        self.requests, self.inner = [], httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        self.requests.append(request)
        if check_address(request.url.host) == "loopback":
            return await self.inner.handle_async_request(request)
        return httpx.Response(200, content=b"answered in-process for " + request.url.host.encode())

    async def aclose(self):
        await self.inner.aclose()


def resolver_from(answers, calls=None):
    """Resolver returning ``answers[i]`` on the i-th call (the last one repeats); logs calls."""
    calls = [] if calls is None else calls

    def resolve(host, port):
        calls.append((host, port))
        return answers[min(len(calls), len(answers)) - 1]

    return resolve


# ---------------------------------------------------------------------------------------------- pure
@pytest.mark.parametrize(
    "address, reason",
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),  # AWS IMDS over IPv6
        ("fd12:3456::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated)
        ("2002:7f00:1::", "loopback"),  # 6to4 carrying 127.0.0.1
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 carrying 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 carrying 169.254.169.254
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        # CGNAT (RFC 6598) is refused: not globally routable, and Alibaba Cloud's metadata is 100.100.100.200.
        ("100.64.0.1", "not globally routable"),
        ("100.100.100.200", "not globally routable"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2001:4860::", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),  # judged by the IPv4 address it carries
        ("2002:808:808::1", None),
    ],
)
def test_check_address(address, reason):
    assert check_address(address) == reason


def test_check_address_allow_networks():
    nets, _ = parse_allow_hosts(("127.0.0.1/32", "10.0.0.0/8", "::1"))
    assert check_address("127.0.0.1", nets) is None
    assert check_address("::ffff:127.0.0.1", nets) is None
    assert check_address("10.200.0.1", nets) is None
    assert check_address("::1", nets) is None
    assert check_address("127.0.0.2", nets) == "loopback"
    assert check_address("192.168.0.1", nets) == "private"


def test_parse_allow_hosts():
    nets, names = parse_allow_hosts(("127.0.0.1/32", "10.0.0.0/8", "192.168.1.5", "fc00::/7", "Media.Internal.", ".corp"))
    assert [str(n) for n in nets] == ["127.0.0.1/32", "10.0.0.0/8", "192.168.1.5/32", "fc00::/7"]
    assert names == {"media.internal", ".corp"}
    for bad in ("10.0.0.0/33", "http://x", "a b", ""):
        with pytest.raises(ValueError):
            parse_allow_hosts((bad,))


def test_limits_validation():
    with pytest.raises(ValueError, match="allowed_schemes"):
        FetchLimits(allowed_schemes=("http", "ftp"))
    with pytest.raises(ValueError, match="allow_hosts"):
        FetchLimits(allow_hosts=("not a host",))
    with pytest.raises(ValueError):
        FetchLimits(max_bytes=0)


# ---------------------------------------------------------------------------------------------- schemes
@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "gopher://h/x", "javascript:alert(1)", "", "no-scheme", "//h/x"])
def test_unsupported_scheme(url):
    with pytest.raises(InvalidRequestError, match="unsupported URL scheme"):
        fetch(url)


def test_scheme_allow_list_is_honoured():
    with pytest.raises(InvalidRequestError, match="unsupported URL scheme"):
        fetch("http://8.8.8.8/x", FetchLimits(allowed_schemes=("https",)))
    with pytest.raises(InvalidRequestError, match="unsupported URL scheme"):
        fetch("data:video/mp4;base64,AAAA", FetchLimits(allowed_schemes=("https",)))


# ---------------------------------------------------------------------------------------------- data:
def test_data_url_roundtrip():
    payload = os.urandom(1000)
    assert fetch("data:video/mp4;base64," + base64.b64encode(payload).decode()) == payload
    assert fetch("data:;base64," + base64.b64encode(b"x").decode()) == b"x"


@pytest.mark.parametrize(
    "url, error, match",
    [
        ("data:video/mp4,rawbytes", InvalidRequestError, "base64"),
        ("data:video/mp4;base64", InvalidRequestError, "base64"),
        ("data:video/mp4;base64,@@@not base64@@@", InvalidRequestError, "not valid base64"),
        ("data:video/mp4;base64,QUJ", InvalidRequestError, "not valid base64"),
        ("data:video/mp4;base64,", MediaFetchError, "empty"),
    ],
)
def test_data_url_invalid(url, error, match):
    with pytest.raises(error, match=match):
        fetch(url)


def test_data_url_size_checked_before_decoding(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("decoded an over-limit payload")

    monkeypatch.setattr(fetch_mod.base64, "b64decode", never)
    with pytest.raises(MediaTooLargeError) as info:
        fetch("data:video/mp4;base64," + "A" * 2000, FetchLimits(max_data_url_bytes=1000))
    assert info.value.status == 413


# ---------------------------------------------------------------------------------------------- file://
@pytest.fixture
def media_root(tmp_path):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "clip.mp4").write_bytes(b"video bytes")
    (root / "sub" / "a b.mp4").write_bytes(b"spaced")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "escape.mp4").symlink_to(tmp_path / "secret.txt")
    (root / "inside-link.mp4").symlink_to(root / "clip.mp4")
    return root


def test_file_url_refused_by_default(media_root):
    with pytest.raises(InvalidRequestError, match="file:// media URLs are disabled"):
        fetch(f"file://{media_root}/clip.mp4", FetchLimits())


def test_file_url_allowed(media_root):
    limits = FetchLimits(allowed_local_media_path=str(media_root))
    assert fetch(f"file://{media_root}/clip.mp4", limits) == b"video bytes"
    assert fetch(f"file://localhost{media_root}/sub/a%20b.mp4", limits) == b"spaced"
    assert fetch(f"file://{media_root}/inside-link.mp4", limits) == b"video bytes"
    assert fetch(f"file://{media_root}/sub/../clip.mp4", limits) == b"video bytes"


@pytest.mark.parametrize(
    "path", ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/escape.mp4", "/../media-other/x"]
)
def test_file_url_escapes_refused(media_root, path):
    with pytest.raises(InvalidRequestError, match="outside the directory"):
        fetch(f"file://{media_root}{path}", FetchLimits(allowed_local_media_path=str(media_root)))


def test_file_url_errors(media_root):
    limits = FetchLimits(allowed_local_media_path=str(media_root), max_bytes=5)
    with pytest.raises(MediaFetchError, match="could not be opened"):
        fetch(f"file://{media_root}/missing.mp4", limits)
    with pytest.raises(MediaFetchError, match="regular file"):
        fetch(f"file://{media_root}/sub", limits)
    with pytest.raises(MediaTooLargeError):
        fetch(f"file://{media_root}/clip.mp4", limits)
    with pytest.raises(InvalidRequestError, match="absolute local path"):
        fetch(f"file://otherhost{media_root}/clip.mp4", limits)
    os.mkfifo(media_root / "pipe")  # must not block waiting for a writer
    with pytest.raises(MediaFetchError, match="regular file"):
        fetch(f"file://{media_root}/pipe", limits)


# ---------------------------------------------------------------------------------------------- SSRF guard
def test_loopback_refused_by_default_and_never_contacted(server):
    for url in (server.url("/small"), server.url("/small", host="localhost"), server.url("/small", host="[::ffff:127.0.0.1]")):
        with pytest.raises(MediaFetchError, match="loopback address; refused"):
            fetch(url, FetchLimits())
    assert server.connections == 0 and server.log == []


def test_allow_hosts_cidr_fetches(server):
    assert fetch(server.url("/small")) == BODY
    assert server.log == [("/small", f"127.0.0.1:{server.port}")]


def test_localhost_with_system_resolver(server):
    limits = FetchLimits(allow_hosts=("127.0.0.1/32", "::1/128"), total_timeout=5.0)
    assert fetch(server.url("/echo-host", host="localhost"), limits) == f"|localhost:{server.port}".encode()


def test_allow_hosts_hostname_pins_and_keeps_host_header(server):
    calls = []
    limits = FetchLimits(allow_hosts=("media.internal",), total_timeout=5.0)
    body = fetch(server.url("/echo-host", host="media.internal"), limits, resolver=resolver_from([["127.0.0.1"]], calls))
    assert body == f"|media.internal:{server.port}".encode()
    assert calls == [("media.internal", server.port)]
    suffix = FetchLimits(allow_hosts=(".internal",), total_timeout=5.0)
    assert fetch(server.url("/small", host="cdn.media.internal"), suffix, resolver=resolver_from([["127.0.0.1"]])) == BODY
    with pytest.raises(MediaFetchError, match="refused"):
        fetch(server.url("/small", host="media.internal.evil"), limits, resolver=resolver_from([["127.0.0.1"]]))
    assert len(server.log) == 2


def test_any_refused_address_refuses_the_host(server):
    transport = GuardTransport()
    with pytest.raises(MediaFetchError, match="loopback address; refused"):
        fetch(server.url("/small", host="mixed.test"), FetchLimits(), resolver=resolver_from([["93.184.216.34", "127.0.0.1"]]), transport=transport)
    assert transport.requests == [] and server.connections == 0


def test_dns_rebinding_connects_to_the_checked_address(server):
    """Resolver says public first, loopback on any later call: one resolution, the connection goes to it."""
    calls, transport = [], GuardTransport()
    resolve = resolver_from([["93.184.216.34"], ["127.0.0.1"]], calls)
    body = fetch(server.url("/small", host="rebind.test"), FetchLimits(), resolver=resolve, transport=transport)
    assert body == b"answered in-process for 93.184.216.34"
    assert len(calls) == 1
    [request] = transport.requests
    assert request.url.host == "93.184.216.34" and request.headers["host"] == f"rebind.test:{server.port}"
    assert server.connections == 0


def test_dns_rebinding_real_sockets(servers):
    """Twin servers on one port: the pinned 127.0.0.2 answers; a re-resolution (or httpx resolving
    "localhost" itself) would have reached 127.0.0.1, which is not allowed."""
    lo1, lo2 = twin_servers(servers)
    calls = []
    limits = FetchLimits(allow_hosts=("127.0.0.2/32",), total_timeout=5.0)
    body = fetch(lo1.url("/echo-host", host="localhost"), limits, resolver=resolver_from([["127.0.0.2"], ["127.0.0.1"]], calls))
    assert body == f"@127.0.0.2|localhost:{lo1.port}".encode()
    assert len(calls) == 1 and lo1.connections == 0 and len(lo2.log) == 1


def test_redirect_to_refused_address_is_refused_at_the_hop(servers):
    lo1, lo2 = twin_servers(servers)
    for target in (lo2.url("/small"), "http://10.0.0.1/x", "http://[::1]/x", "http://internal.test/x"):
        with pytest.raises(MediaFetchError, match="refused"):
            fetch(lo1.url("/to?url=" + target), resolver=resolver_from([["192.168.0.10"]]), transport=GuardTransport())
    assert lo2.connections == 0 and len(lo1.log) == 4


def test_https_sends_sni_and_host_of_the_name():
    transport = GuardTransport()
    body = fetch("https://cdn.example.test/v.mp4", FetchLimits(), resolver=resolver_from([["93.184.216.34"]]), transport=transport)
    assert body.endswith(b"93.184.216.34")
    [request] = transport.requests
    assert str(request.url) == "https://93.184.216.34/v.mp4"
    assert request.headers["host"] == "cdn.example.test"
    assert request.extensions["sni_hostname"] == "cdn.example.test"
    assert request.headers["accept-encoding"] == "identity"


def test_ip_literal_urls_keep_their_host_header():
    transport = GuardTransport()
    fetch("http://[2606:4700:4700::1111]:8080/v.mp4", FetchLimits(), transport=transport)
    fetch("https://93.184.216.34/v.mp4", FetchLimits(), transport=transport)
    first, second = transport.requests
    assert first.headers["host"] == "[2606:4700:4700::1111]:8080" and "sni_hostname" not in first.extensions
    assert second.headers["host"] == "93.184.216.34" and "sni_hostname" not in second.extensions


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a test certificate")
def test_https_real_tls_pinned_with_sni(servers, tmp_path):
    """A real TLS server on 127.0.0.1 with a certificate for media.test only: the handshake verifies
    against the name (SNI) although the socket connects to the pinned IP."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=media.test",
         "-addext", "subjectAltName=DNS:media.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = servers(tls=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    limits = FetchLimits(allow_hosts=("media.test",), total_timeout=5.0)
    body = fetch(srv.url("/echo-host", host="media.test", scheme="https"), limits,
                 resolver=resolver_from([["127.0.0.1"]]), transport=httpx.AsyncHTTPTransport(verify=client_ctx))
    assert body == f"|media.test:{srv.port}".encode()
    assert srv.sni == ["media.test"]


# ---------------------------------------------------------------------------------------------- redirects
def test_redirect_chain_within_limit(server):
    assert fetch(server.url("/redirect/3")) == BODY
    assert [path for path, _ in server.log] == ["/redirect/3", "/redirect/2", "/redirect/1", "/small"]


def test_too_many_redirects(server):
    with pytest.raises(MediaFetchError, match="more than 3 times"):
        fetch(server.url("/redirect/4"))
    assert len(server.log) == 4  # never requested the target


def test_redirect_loop(server):
    with pytest.raises(MediaFetchError, match="loop"):
        fetch(server.url("/loop-a"))
    assert len(server.log) == 2


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/x", "file:///etc/passwd", "data:;base64,AAAA", "javascript:alert(1)"])
def test_redirect_to_disallowed_scheme(server, target):
    with pytest.raises(MediaFetchError, match="unsupported URL scheme"):
        fetch(server.url("/to?url=" + target))


def test_redirect_without_location(server):
    with pytest.raises(MediaFetchError, match="without a Location"):
        fetch(server.url("/no-location"))


# ---------------------------------------------------------------------------------------------- limits
def test_chunked_body_aborted_at_the_byte_cap(server):
    limits = FetchLimits(allow_hosts=("127.0.0.1/32",), max_bytes=1 * MiB, total_timeout=10.0)
    with pytest.raises(MediaTooLargeError) as info:
        fetch(server.url("/chunked-huge"), limits)
    assert info.value.status == 413
    assert server.stats["done"].wait(5.0), "server still writing: the client did not close the connection"
    assert server.stats["aborted"] and not server.stats["finished"]
    assert server.stats["sent"] < 32 * MiB, server.stats["sent"]  # of 64 MiB: the rest was never produced


def test_declared_content_length_over_cap(server):
    started = time.monotonic()
    with pytest.raises(MediaTooLargeError, match="Content-Length"):
        fetch(server.url("/declared-huge"), FetchLimits(allow_hosts=("127.0.0.1/32",), max_bytes=MiB))
    assert time.monotonic() - started < 2.0


def test_gzip_body_counted_decoded(server):
    with pytest.raises(MediaTooLargeError):
        fetch(server.url("/gzip-bomb"), FetchLimits(allow_hosts=("127.0.0.1/32",), max_bytes=MiB))
    assert fetch(server.url("/small")) == BODY


def test_lying_content_length(server):
    with pytest.raises(MediaFetchError, match="fetching the media URL failed"):
        fetch(server.url("/lying-short"))


def test_total_deadline(server):
    started = time.monotonic()
    with pytest.raises(MediaFetchError, match="longer than 1 s"):
        fetch(server.url("/slow"), FetchLimits(allow_hosts=("127.0.0.1/32",), total_timeout=1.0))
    assert time.monotonic() - started < 2.0


def test_http_error_status(server):
    with pytest.raises(MediaFetchError, match="HTTP 404"):
        fetch(server.url("/missing"))


def test_connection_refused_is_typed():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MediaFetchError, match="could not connect"):
        fetch(f"http://127.0.0.1:{port}/x")


def test_resolver_failures_are_typed():
    def fail(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    for resolver, match in ((fail, "could not resolve"), (lambda h, p: [], "could not resolve"), (lambda h, p: ["nope"], "non-address")):
        with pytest.raises(MediaFetchError, match=match):
            fetch("http://media.test/x", FetchLimits(), resolver=resolver, transport=GuardTransport())


@pytest.mark.parametrize("url", ["http://[::1/x", "http://:80/x", "http:///x", "https://exa mple.com:99999/"])
def test_invalid_urls_are_typed(url):
    with pytest.raises(AuroraError) as info:
        fetch(url, FetchLimits(), transport=GuardTransport(), resolver=resolver_from([["93.184.216.34"]]))
    assert info.value.status == 400
