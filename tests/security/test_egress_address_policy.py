"""The egress policy without a network (issue 16): the publisher's settings judge configured
platform URLs at start and keep loopback for tests and local trials, the contract refuses an
account URL that is not public https without echoing it, and property tests hold the address
policy to `ipaddress` and to every spelling of a non-public address, through the real client
before any socket opens. (Connections a listener sees, or does not: test_egress.py.)
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hopcast_publisher.adapters.platforms.egress import EgressPolicy, EgressRefused, platform_client
from hopcast_publisher.config import PublisherSettings
from hopcast_shared.contract import SocialAccountConnected
from hopcast_shared.contract.examples import example_data
from hopcast_shared.public_address import literal_address, why_not_public, why_not_public_url

# --- settings and the contract ------------------------------------------------------------------


def test_the_loopback_setting_is_off_by_default_and_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PublisherSettings().egress_allow_loopback is False
    monkeypatch.setenv("HOPCAST_ENV", "production")
    monkeypatch.setenv("PUBLISHER_EGRESS_ALLOW_LOOPBACK", "true")
    with pytest.raises(ValidationError, match="not production"):
        PublisherSettings()


@pytest.mark.parametrize(
    "values",
    [
        {"bluesky_pds_url": "http://bsky.social"},
        {"x_api_url": "https://169.254.169.254"},
        {"linkedin_api_url": "https://127.0.0.1:8443"},
        {"egress_allowlist_x": "api.x.com", "x_api_url": "https://api.twitter.com"},
    ],
)
def test_configured_platform_urls_are_judged_at_start(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PublisherSettings(**values)  # type: ignore[arg-type]


def test_configured_loopback_urls_need_the_setting() -> None:
    assert PublisherSettings(egress_allow_loopback=True, bluesky_pds_url="http://127.0.0.1:2583").bluesky_pds_url
    settings = PublisherSettings(egress_allowlist_mastodon="Mastodon.Social, fosstodon.org")
    assert settings.egress_allowlists() == {"MASTODON": frozenset({"mastodon.social", "fosstodon.org"})}


@pytest.mark.parametrize(
    "url",
    [
        "http://mastodon.social",
        "https://127.0.0.1",
        "https://[::1]:8080",
        "https://10.0.0.8",
        "https://169.254.169.254/latest",
        "https://[fd00::1]",
        "https://[::ffff:127.0.0.1]",
        "https://2130706433",
        "https://0x7f.1",
        "https://0177.0.0.1",
        "https://localhost:3000",
        "https://pds.localhost",
        "https://user:pw@mastodon.social",
        "ftp://mastodon.social",
    ],
)
def test_an_account_event_with_a_url_that_is_not_public_https_is_refused(url: str) -> None:
    data = example_data("SocialAccountConnected", platform="MASTODON", api_base_url=url)
    with pytest.raises(ValidationError) as refused:
        SocialAccountConnected.model_validate(data)
    assert "api_base_url" in str(refused.value)
    assert url not in str(refused.value)  # the message never shows the value


def test_an_account_event_with_a_public_https_url_is_accepted() -> None:
    for url in ("https://mastodon.social", "https://fosstodon.org/", "https://[2606:4700::1]", "https://8.8.8.8"):
        data = example_data("SocialAccountConnected", platform="MASTODON", api_base_url=url)
        assert SocialAccountConnected.model_validate(data).api_base_url == url


# --- property tests of the address policy --------------------------------------------------------

_V4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
_V6 = st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address)
_NON_PUBLIC_V4_NETS = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]


@st.composite
def non_public_v4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(_NON_PUBLIC_V4_NETS))
    return ipaddress.IPv4Address(int(net.network_address) + draw(st.integers(0, net.num_addresses - 1)))


def spellings(address: ipaddress.IPv4Address) -> list[str]:
    """Ways to write an IPv4 address as a URL host that resolve to it."""
    a, b, c, d = address.packed
    return [
        str(address),
        str(int(address)),
        hex(int(address)),
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"[::ffff:{address}]",
    ]


@hyp_settings(max_examples=300, deadline=None)
@given(_V4)
def test_a_public_v4_verdict_is_never_kinder_than_ipaddress(address: ipaddress.IPv4Address) -> None:
    verdict = why_not_public(address)
    if verdict is None:
        assert address.is_global and not address.is_multicast and not address.is_reserved
    if not address.is_global or address.is_multicast:
        assert verdict is not None


@hyp_settings(max_examples=300, deadline=None)
@given(_V6)
def test_a_v6_verdict_is_never_kinder_than_ipaddress(address: ipaddress.IPv6Address) -> None:
    if why_not_public(address) is None:
        assert address.is_global and not address.is_multicast and address.ipv4_mapped is None


@hyp_settings(max_examples=300, deadline=None)
@given(non_public_v4())
def test_no_spelling_of_a_non_public_v4_address_passes(address: ipaddress.IPv4Address) -> None:
    assert why_not_public(address) is not None
    for host in spellings(address):
        if not host.startswith("["):
            assert literal_address(host) == address, host
        assert why_not_public_url(f"https://{host}/") is not None, host
    embedded = [
        ipaddress.IPv6Address(f"::ffff:{address}"),
        ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address)),
        ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80) | 1),
    ]
    for v6 in embedded:
        assert why_not_public(v6) is not None, v6


@hyp_settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["fc00::/7", "fe80::/10", "ff00::/8", "::/96", "2001:db8::/32", "fec0::/10"]).map(
        ipaddress.IPv6Network
    ),
    st.integers(min_value=0, max_value=2**128 - 1),
)
def test_v6_ranges_that_are_not_public_never_pass(net: ipaddress.IPv6Network, offset: int) -> None:
    address = ipaddress.IPv6Address(int(net.network_address) + offset % net.num_addresses)
    assert why_not_public(address) is not None
    assert why_not_public_url(f"https://[{address}]/") is not None


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(non_public_v4())
async def test_the_guard_refuses_every_spelling_before_any_socket(address: ipaddress.IPv4Address) -> None:
    """Through the real client: each spelling the URL parser takes is refused, the system
    resolver and the guard agreeing on what it names."""
    asked: list[str] = []

    class Recording(httpcore.AnyIOBackend):
        async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            asked.append(host)
            raise httpcore.ConnectError("not in this test")

    client = platform_client(
        "MASTODON", EgressPolicy(network=Recording()), connect_timeout_s=1, read_timeout_s=1, user_agent="t"
    )
    try:
        for host in spellings(address):
            try:
                await client.get(f"https://{host}:9/")
            except httpx.InvalidURL:
                continue  # never sent: the adapters fail it EGRESS_REFUSED
            except EgressRefused:
                continue
            raise AssertionError(f"{host} was not refused")
    finally:
        await client.aclose()
    assert asked == []
