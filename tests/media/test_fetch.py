"""Tests for aurora_serve.media.fetch: limits, schemes, the SSRF guard over real sockets, DNS pinning, redirects.

Network rule (see ``tests/support/loopback.py``): traffic goes only to loopback servers started here; any other
address is answered in-process by ``GuardTransport``, never sent.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time

import httpx
import pytest

from aurora_serve.errors import AuroraError, InvalidRequestError, MediaFetchError, MediaTooLargeError
from aurora_serve.media.fetch import FetchLimits, fetch_media
from tests.support.loopback import BODY, MiB, GuardTransport, Server, resolver_from

LOCAL = FetchLimits(allow_hosts=("127.0.0.1/32",), connect_timeout=1.0, total_timeout=5.0)


def fetch(url, limits=LOCAL, **kwargs) -> bytes:
    return asyncio.run(fetch_media(url, limits, **kwargs))


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


def test_gzip_bomb_is_refused_without_inflating_it(server):
    """8 MiB of zeros gzipped to 8 KiB: refused by its Content-Encoding (it used to be inflated, then counted)."""
    with pytest.raises(MediaFetchError, match="Content-Encoding 'gzip'"):
        fetch(server.url("/gzip-bomb"), FetchLimits(allow_hosts=("127.0.0.1/32",), max_bytes=MiB))
    assert fetch(server.url("/small")) == BODY


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "x-gzip", "gzip, identity"])
def test_encoded_bodies_are_refused(server, encoding):
    # the body is plain bytes labelled as encoded: decoding it would fail differently, so the match shows
    # it was refused on the header, before any decoding
    with pytest.raises(MediaFetchError, match="Content-Encoding"):
        fetch(server.url(f"/encoded?as={encoding}"))


def test_identity_encoding_is_accepted(server):
    assert fetch(server.url("/encoded?as=identity")) == BODY


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
