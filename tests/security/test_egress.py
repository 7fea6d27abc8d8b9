"""The SSRF suite: platform calls turned against us (issue 16). A real listener on 127.0.0.1 and
::1 stands for whatever sits on an internal address; every URL below, whichever way it
names a non-public address, fails the platform with EGRESS_REFUSED while the listener sees
no connection, so no request and no token.

The sockets are opened by the guard's network backend; here it is routed to the listener
whatever address it is asked for (`ToListener`), so a refused private, link-local or
metadata address, which would otherwise go nowhere on this machine, would be seen arriving
if the guard let it through. A public address is let through and does arrive: the rig can
see a leak. (The settings, the contract's account URLs and property tests of the address
policy: test_egress_address_policy.py.)
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpcore
import pytest

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, PublishFailure, RetryPolicy
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.egress import EgressPolicy, EgressRefused, platform_client
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_shared.contract import PublishFailureReason
from hopcast_shared.public_address import literal_address

TOKEN = "s3cret-access-token-0123456789"  # noqa: S105 (a test token)
PUBLIC = "93.184.215.14"  # a public address (example.org's)


# --- the listener --------------------------------------------------------------------------------


@dataclass
class Listener:
    """A TCP server on 127.0.0.1 and ::1 that records every connection and every byte, and
    answers each request with `answer` (raw HTTP)."""

    answer: bytes = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)
    port: int = 0
    port6: int = 0
    host: str = "127.0.0.1"
    _servers: list[asyncio.Server] = field(default_factory=list)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            data = await asyncio.wait_for(reader.read(65536), 2)
            self.received += data
            if data.startswith((b"GET ", b"POST ")):
                writer.write(self.answer)
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> Listener:
        server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        server6 = await asyncio.start_server(self._serve, "::1", 0)
        self.port6 = server6.sockets[0].getsockname()[1]
        self._servers += [server, server6]
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    @property
    def got_token(self) -> bool:
        return TOKEN.encode() in self.received


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    server = await Listener().start()
    yield server
    await server.stop()


class ToListener(httpcore.AsyncNetworkBackend):
    """Opens every socket to the listener, whatever address the guard asks for, and notes the
    addresses asked."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.asked: list[str] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.asked.append(host)
        return await self._inner.connect_tcp("127.0.0.1", self.listener.port, timeout=timeout)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def resolver(names: dict[str, Sequence[str]]) -> Any:
    """A resolver from a table; a literal address resolves to itself, as getaddrinfo does."""

    async def resolve(host: str, port: int) -> list[str]:
        if host in names:
            return list(names[host])
        if literal_address(host) is not None:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            return [str(info[4][0]) for info in infos]
        raise socket.gaierror(socket.EAI_NONAME, "unknown name")

    return resolve


def account(api_base_url: str) -> AccountCredentials:
    return AccountCredentials(
        social_account_id=uuid.uuid4(),
        platform="MASTODON",
        handle="@victim@instance",
        external_account_id=None,
        api_base_url=api_base_url,
        access_token=TOKEN,
        refresh_token="refresh-" + TOKEN,
    )


def request() -> PostRequest:
    return PostRequest(f"hopcast-{uuid.uuid4()}", "hello", datetime.now(UTC))


async def _stored(*_: object) -> None:
    raise AssertionError("no refresh expected")


async def publish_via(policy: EgressPolicy, url: str) -> PublishFailure:
    adapter = MastodonAdapter(
        client_id="app",
        client_secret="app-secret",  # noqa: S106
        options=AdapterOptions(
            policy=RetryPolicy(max_attempts=1),  # one try, one connection to judge
            http=HttpSettings(connect_timeout_s=2, read_timeout_s=2),
            egress=policy,
        ),
    )
    try:
        with pytest.raises(PublishFailure) as failure:
            await adapter.publish(account(url), request(), resumed=False, on_refreshed=_stored)
        return failure.value
    finally:
        await adapter.close()


# --- refused: literal addresses, names, schemes ---------------------------------------------------

LITERAL_URLS = [
    "https://127.0.0.1:{port}",
    "https://127.9.9.9:{port}",
    "https://[::1]:{port6}",
    "https://10.1.2.3:{port}",
    "https://172.16.5.4:{port}",
    "https://192.168.0.10:{port}",
    "https://169.254.169.254",  # cloud metadata
    "https://169.254.1.1:{port}",
    "https://[fe80::1]:{port}",
    "https://100.64.0.1:{port}",  # CGNAT
    "https://[fc00::1]:{port}",  # ULA
    "https://[fd12:3456::1]:{port}",
    "https://[::ffff:127.0.0.1]:{port}",  # IPv4-mapped
    "https://[::ffff:10.0.0.1]:{port}",
    "https://[::ffff:8.8.8.8]:{port}",  # mapped, even to a public address
    "https://[::127.0.0.1]:{port}",  # IPv4-compatible
    "https://[64:ff9b::a00:1]:{port}",  # NAT64 of 10.0.0.1
    "https://[2002:7f00:1::1]:{port}",  # 6to4 of 127.0.0.1
    "https://0.0.0.0:{port}",
    "https://[::]:{port}",
    "https://224.0.0.1:{port}",
    "https://255.255.255.255:{port}",
    "https://240.0.0.1:{port}",
    "https://192.0.2.10:{port}",  # documentation
    "https://[2001:db8::1]:{port}",
    "https://2130706433:{port}",  # 127.0.0.1 as one decimal number
    "https://0x7f.1:{port}",  # 127.0.0.1 in hex, shortened
    "https://127.1:{port}",
    "https://0177.0.0.1:{port}",  # octal: httpx will not parse it, a resolver would
]


@pytest.mark.parametrize("template", LITERAL_URLS)
async def test_a_non_public_address_gets_no_request_and_no_token(listener: Listener, template: str) -> None:
    url = template.format(port=listener.port, port6=listener.port6)
    network = ToListener(listener)
    failure = await publish_via(EgressPolicy(network=network), url)
    assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert "refused" in failure.detail and TOKEN not in failure.detail
    assert network.asked == []
    assert listener.connections == 0 and not listener.got_token


@pytest.mark.parametrize("template", ["https://2130706433:{port}", "https://0x7f.1:{port}", "https://127.0.0.1:{port}"])
async def test_numeric_hosts_are_judged_on_what_the_system_resolver_makes_of_them(
    listener: Listener, template: str
) -> None:
    # No routing: the real getaddrinfo and real sockets, as in production.
    failure = await publish_via(EgressPolicy(), template.format(port=listener.port))
    assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert "resolves to 127.0.0.1 (loopback)" in failure.detail
    assert listener.connections == 0


async def test_localhost_resolved_by_the_system_is_refused(listener: Listener) -> None:
    failure = await publish_via(EgressPolicy(), f"https://localhost:{listener.port}")
    assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert "loopback" in failure.detail
    assert listener.connections == 0


@pytest.mark.parametrize(
    "answers",
    [["10.0.0.5"], ["169.254.169.254"], ["fd00::5"], [PUBLIC, "127.0.0.1"], ["::ffff:192.168.1.1"]],
    ids=["private", "metadata", "ula", "public-and-loopback", "mapped"],
)
async def test_a_name_resolving_to_a_non_public_address_is_refused(listener: Listener, answers: list[str]) -> None:
    network = ToListener(listener)
    policy = EgressPolicy(resolver=resolver({"mastodon.example": answers}), network=network)
    failure = await publish_via(policy, "https://mastodon.example")
    assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert failure.detail.startswith("MASTODON: egress to mastodon.example refused: resolves to ")
    assert network.asked == [] and listener.connections == 0


async def test_plain_http_is_refused_even_to_a_public_host(listener: Listener) -> None:
    network = ToListener(listener)
    policy = EgressPolicy(resolver=resolver({"mastodon.example": [PUBLIC]}), network=network)
    failure = await publish_via(policy, "http://mastodon.example")
    assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert failure.detail.endswith("refused: not https")
    assert network.asked == [] and listener.connections == 0


async def test_the_loopback_setting_allows_loopback_and_nothing_else(listener: Listener) -> None:
    network = ToListener(listener)
    policy = EgressPolicy(allow_loopback=True, network=network)
    for template in ("https://10.0.0.1:{port}", "https://[::ffff:127.0.0.1]:{port}", "https://169.254.169.254"):
        failure = await publish_via(policy, template.format(port=listener.port))
        assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert listener.connections == 0
    # Plain http goes to loopback only, never to a name that is not local.
    named = EgressPolicy(allow_loopback=True, resolver=resolver({"m.example": [PUBLIC]}), network=network)
    assert (await publish_via(named, "http://m.example")).reason is PublishFailureReason.EGRESS_REFUSED
    assert network.asked == [] and listener.connections == 0


async def test_a_host_off_the_allowlist_is_refused(listener: Listener) -> None:
    network = ToListener(listener)
    policy = EgressPolicy(
        allowlists={"MASTODON": frozenset({"mastodon.social"})},
        resolver=resolver({"evil.example": [PUBLIC], "mastodon.social": [PUBLIC]}),
        network=network,
    )
    failure = await publish_via(policy, "https://evil.example")
    assert failure.detail.endswith("not on the platform's egress allowlist")
    assert network.asked == [] and listener.connections == 0


async def test_credentials_in_the_url_are_refused(listener: Listener) -> None:
    network = ToListener(listener)
    policy = EgressPolicy(resolver=resolver({"m.example": [PUBLIC]}), network=network)
    failure = await publish_via(policy, "https://user:pw@m.example")
    assert failure.reason is PublishFailureReason.EGRESS_REFUSED
    assert "pw" not in failure.detail and listener.connections == 0


# --- let through: the rig sees what arrives -------------------------------------------------------


async def test_a_public_address_is_connected_to_exactly_as_judged(listener: Listener) -> None:
    network = ToListener(listener)
    policy = EgressPolicy(resolver=resolver({"mastodon.example": [PUBLIC, "2606:4700::6810:84e5"]}), network=network)
    failure = await publish_via(policy, "https://mastodon.example")
    # The listener does not speak TLS, so the call fails, but it got there, by address, with
    # the host name as SNI (the certificate is checked against the name, not the address).
    assert failure.reason is not PublishFailureReason.EGRESS_REFUSED
    assert network.asked[0] == PUBLIC
    assert listener.connections >= 1 and b"mastodon.example" in listener.received
    assert not listener.got_token  # TLS never completed: nothing in the clear


async def test_dns_rebinding_cannot_slip_past(listener: Listener) -> None:
    """The first lookup says public, the next says loopback: each connection is judged on the
    address it opens to, so the second is refused."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    network = ToListener(listener)
    policy = EgressPolicy(resolver=rebinding, network=network)
    first = await publish_via(policy, "https://rebind.example")
    assert first.reason is not PublishFailureReason.EGRESS_REFUSED and network.asked == [PUBLIC]
    seen = listener.connections
    second = await publish_via(policy, "https://rebind.example")
    assert second.reason is PublishFailureReason.EGRESS_REFUSED
    assert network.asked == [PUBLIC] and listener.connections == seen


# --- redirects ------------------------------------------------------------------------------------


async def _redirecting_pair(location: str) -> tuple[Listener, Listener]:
    target = await Listener(host="127.0.0.2").start()
    first = await Listener(
        answer=(
            f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {location.format(port=target.port)}\r\n"
            "content-length: 0\r\n\r\n"
        ).encode()
    ).start()
    return first, target


async def test_an_adapter_never_follows_a_redirect_to_another_host() -> None:
    first, target = await _redirecting_pair("http://127.0.0.2:{port}/api/v1/statuses")
    try:
        failure = await publish_via(EgressPolicy(allow_loopback=True), f"http://127.0.0.1:{first.port}")
        assert failure.reason is PublishFailureReason.PLATFORM_REJECTED
        assert failure.detail == "MASTODON answered 307"
        assert first.got_token  # the platform itself got its token...
        assert target.connections == 0 and not target.got_token  # ...the other host nothing
    finally:
        await first.stop()
        await target.stop()


async def test_a_followed_redirect_drops_the_token_and_is_checked_again() -> None:
    """Even a call that asks to follow: httpx drops Authorization for another origin, and the
    next hop goes through the guard (a redirect to the metadata address is refused)."""
    first, target = await _redirecting_pair("http://127.0.0.2:{port}/next")
    client = platform_client(
        "MASTODON", EgressPolicy(allow_loopback=True), connect_timeout_s=2, read_timeout_s=2, user_agent="t"
    )
    try:
        response = await client.get(
            f"http://127.0.0.1:{first.port}/", headers={"Authorization": f"Bearer {TOKEN}"}, follow_redirects=True
        )
        assert response.status_code == 200
        assert target.connections == 1 and b"GET /next" in target.received
        assert not target.got_token and b"authorization" not in bytes(target.received).lower()
        assert first.got_token
    finally:
        await first.stop()
        await target.stop()
        await client.aclose()

    to_metadata, unused = await _redirecting_pair("https://169.254.169.254/latest/meta-data/")
    client = platform_client(
        "MASTODON", EgressPolicy(allow_loopback=True), connect_timeout_s=2, read_timeout_s=2, user_agent="t"
    )
    try:
        with pytest.raises(EgressRefused, match=r"169\.254\.169\.254 \(link-local\)"):
            await client.get(f"http://127.0.0.1:{to_metadata.port}/", follow_redirects=True)
    finally:
        await to_metadata.stop()
        await unused.stop()
        await client.aclose()


async def test_a_token_refresh_is_guarded_too(listener: Listener) -> None:
    adapter = BlueskyAdapter(pds_url="https://bsky.example", options=AdapterOptions(egress=EgressPolicy()))
    try:
        with pytest.raises(PublishFailure) as failure:
            await adapter.refresh(account(f"https://127.0.0.1:{listener.port}"))
        assert failure.value.reason is PublishFailureReason.EGRESS_REFUSED
        assert listener.connections == 0
    finally:
        await adapter.close()
