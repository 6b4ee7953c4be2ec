"""The key-less server's Host and Origin policy (aurora_serve.api.hosts): pure, no server."""

from __future__ import annotations

import pytest

from aurora_serve.api.hosts import allowed_names, host_allowed, origin_allowed, parse_allowed, split_host

ALLOWED = allowed_names(("aurora.example.com", ".internal.example"), "127.0.0.1")


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8000", True), ("127.8.9.10", True), ("[::1]:8000", True), ("localhost:8000", True),
    ("LOCALHOST.", True), ("app.localhost:8000", True),
    ("10.0.0.5:8000", True), ("[2001:db8::5]", True),  # IP literals: a browser reached that address by it
    ("aurora.example.com", True), ("Aurora.Example.Com.:443", True),
    ("svc.internal.example", True), ("internal.example", False),  # ".x" matches subdomains only
    ("evil.example", False), ("evil.example:8000", False), ("localhost.evil.example", False),
    ("aurora.example.com.evil.example", False), ("127.0.0.1.nip.io", False),
    ("[::1", False), ("localhost:80x", False), ("", False),
    (None, True),  # HTTP/1.0 without Host: browsers always send one
])
def test_host_allowed(host, ok):
    assert host_allowed(host, ALLOWED) is ok


def test_bound_host_name_is_allowed_and_star_lifts_the_check():
    assert host_allowed("gpu-box:8000", allowed_names((), "gpu-box"))
    assert not host_allowed("gpu-box:8000", allowed_names((), "0.0.0.0"))
    assert allowed_names((), "::") == frozenset()
    assert host_allowed("anything.example", allowed_names(("*",), "127.0.0.1"))


@pytest.mark.parametrize("origin, host, scheme, ok", [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "http", True),  # the playground: same origin
    ("http://localhost:8000", "localhost:8000", "http", True),
    ("http://[::1]:8000", "[::1]:8000", "http", True),
    ("http://example.test", "example.test:80", "http", True),  # default ports filled in
    ("https://aurora.example.com", "aurora.example.com", "http", True),  # listed (TLS ends at the ingress)
    ("http://evil.example", "127.0.0.1:8000", "http", False),  # another site's page
    ("http://127.0.0.1:3000", "127.0.0.1:8000", "http", False),  # another port is another origin
    ("http://localhost:8000", "127.0.0.1:8000", "http", False),
    ("https://127.0.0.1:8000", "127.0.0.1:8000", "http", True),  # scheme differs, host and port are ours
    ("null", "127.0.0.1:8000", "http", False),  # sandboxed frames, file: pages
    ("file://", "127.0.0.1:8000", "http", False),
    ("http://127.0.0.1:99999", "127.0.0.1:8000", "http", False),
    ("http://127.0.0.1:8000", None, "http", False),
])
def test_origin_allowed(origin, host, scheme, ok):
    assert origin_allowed(origin, host, scheme, ALLOWED) is ok


def test_star_does_not_admit_other_sites():
    star = allowed_names(("*",), "127.0.0.1")
    assert not origin_allowed("http://evil.example", "127.0.0.1:8000", "http", star)


def test_split_host_and_parse_allowed():
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("Example.COM.") == ("example.com", None)
    assert parse_allowed((" Aurora.Example.Com. ", "*", ".corp")) == {"aurora.example.com", "*", ".corp"}
    for bad in ("http://x", "a b", "x:80", ""):
        with pytest.raises(ValueError):
            parse_allowed((bad,))
