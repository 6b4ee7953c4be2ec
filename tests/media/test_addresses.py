"""Tests for aurora_serve.media.addresses: which addresses the SSRF guard refuses (pure: no sockets)."""

from __future__ import annotations

import pytest

from aurora_serve.media.addresses import check_address, parse_allow_hosts


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
        # Refused by name, whatever this Python's ipaddress says (its classification changed in 3.11.10/3.12.4):
        ("fec0::1", "site-local"),  # deprecated site-local fec0::/10: Python calls it global
        ("feff:ffff::1", "site-local"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),  # RFC 8215: into the operator's own IPv4 space
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),  # RFC 9637 (2024): Python 3.11 calls it global
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2001:4860::", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),  # judged by the IPv4 address it carries
        ("2002:808:808::1", None),
        ("febf:ffff::1", "link-local"),  # just below fec0::/10: still judged as before
        ("ff00::1", "multicast"),
        ("64:ff9b:2::1", "reserved"),
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
