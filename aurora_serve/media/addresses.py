"""Which network addresses media fetches may contact: the address half of the SSRF guard. Pure: no DNS, no sockets.

Refused addresses: unspecified, loopback, link-local (incl. cloud metadata 169.254.169.254), multicast,
private, reserved, and anything else not globally routable - notably CGNAT 100.64.0.0/10 (Alibaba Cloud's
metadata service lives at 100.100.100.200). IPv4 embedded in IPv6 (mapped ``::ffff:a.b.c.d``, compatible
``::a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it carries.

Python's ``ipaddress`` classification changed in patch releases (gh-113171: 3.11.10, 3.12.4) and misses
some ranges, so the ranges below are refused by name, whatever the interpreter says: deprecated
site-local ``fec0::/10`` (RFC 3879; still routed inside some networks), local-use NAT64 ``64:ff9b:1::/48``
(RFC 8215: translates into the operator's own IPv4 space), documentation ``2001:db8::/32`` and ``3fff::/20``
(RFC 3849, RFC 9637).
"""

from __future__ import annotations

import functools
import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HOSTNAME = re.compile(r"^\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple((ipaddress.ip_network(net), why) for net, why in (
    ("fec0::/10", "site-local"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
))


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
            pass  # not a network: try it as a hostname
        if not HOSTNAME.match(text.rstrip(".")):
            raise ValueError(f"allow_hosts: {entry!r} is neither a CIDR, an IP address nor a hostname")
        names.add(text.rstrip("."))
    return tuple(nets), frozenset(names)


def name_listed(host: str, names: frozenset[str]) -> bool:
    """``host`` is one of ``names``, or under one written as ".example.com" (both lower-case, no trailing dot)."""
    return host in names or any(n.startswith(".") and host.endswith(n) for n in names)


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

    Addresses inside an ``allowed`` network are always permitted."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    inner = _embedded_v4(ip)
    if inner is not None:
        return check_address(inner, allowed)
    for net, why in _REFUSED:
        if ip.version == net.version and ip in net:
            return why
    for reason in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{reason}"):
            return reason.replace("_", "-")
    return None if ip.is_global else "not globally routable"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True
