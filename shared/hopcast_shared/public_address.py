"""Which network addresses are public: the address policy of platform calls (the publisher's
egress guard judges every resolved address with it) and of the platform URLs the contract
accepts (a literal address in `api_base_url` is judged at once).

Built on `ipaddress`, with explicit checks where its `is_global` is too kind (Python 3.11
calls multicast, IPv4-mapped and NAT64 IPv6 addresses global).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not public, though some Python versions' `is_global` says so: IANA's special-purpose
# registries, checked by hand so the verdict does not depend on the patch release.
_NOT_PUBLIC_NETWORKS: Final[tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]] = (
    (ipaddress.IPv4Network("100.64.0.0/10"), "shared (CGNAT)"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "an IETF protocol assignment"),
    (ipaddress.IPv4Network("192.88.99.0/24"), "a 6to4 relay anycast"),
    (ipaddress.IPv4Network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.IPv6Network("3fff::/20"), "documentation"),
    (ipaddress.IPv6Network("5f00::/16"), "segment routing"),
)
_NAT64: Final = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# What inet_aton reads as an IPv4 address: `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`.
# The resolver of the system reads them the same way, so they are addresses, not names.
_NUMERIC_HOST: Final = re.compile(r"^[0-9a-fA-FxX.]+$")


def why_not_public(address: IPAddress) -> str | None:
    """Why the address is not a public unicast address ("loopback", "private"...), or None
    when it is. An IPv6 address embedding an IPv4 one (6to4, NAT64) is judged by the IPv4
    address it leads to; IPv4-mapped and IPv4-compatible forms are refused outright (a
    platform never needs them, and they reach the IPv4 host behind them)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.compressed.split("%")[0])  # no zone id
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address.is_loopback:
            return "loopback"
        if address.is_unspecified:
            return "unspecified"
        if int(address) >> 32 == 0:
            return "an IPv4-compatible IPv6 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            why = why_not_public(embedded)
            return f"leads to a {why} IPv4 address" if why else None
        if address.teredo is not None:
            return "a Teredo address"
        if address.is_site_local:
            return "site-local"
    return _why_not_public_plain(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _why_not_public_plain(address: IPAddress) -> str | None:
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        *((address.version == net.version and address in net, why) for net, why in _NOT_PUBLIC_NETWORKS),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
    )
    for hit, why in checks:
        if hit:
            return why
    return None if address.is_global else "not global"


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally (`[::1]`, `10.0.0.1`, `fe80::1%eth0`, and the
    numeric forms the system resolver takes as IPv4: `2130706433`, `0x7f.1`), else None
    (a name)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if "%" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    if _NUMERIC_HOST.fullmatch(host.rstrip(".")):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def is_local_name(host: str) -> bool:
    """`localhost` and names under it (RFC 6761), which resolve to loopback by definition."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def is_loopback_host(host: str) -> bool:
    """Whether a URL host is a loopback address (127.0.0.0/8, ::1) or a local name."""
    address = literal_address(host)
    return is_local_name(host) if address is None else address.is_loopback


def why_not_public_url(url: str) -> str | None:
    """What is wrong with a platform URL before any lookup: not https, credentials in it,
    no host, a local name, or a literal address that is not public. None when it may be
    tried (its names are judged again when they resolve, at connect time)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() != "https":
        return "not https"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL"
    if not host:
        return "no host"
    if is_local_name(host):
        return "a local name"
    address = literal_address(host)
    if address is not None:
        why = why_not_public(address)
        if why:
            return f"a {why} address"
    return None
