"""Egress that cannot be turned against us: every platform call goes through `platform_client`,
whose transport refuses a URL before any connection (not https, credentials in it, a host off
the platform's allowlist) and whose network backend resolves the host itself, judges every
address it resolved to, and connects to exactly the addresses it judged.

Because the check is made on the addresses the socket is opened to, a name that resolved to
a public address for a first lookup and to 127.0.0.1 for a second (DNS rebinding) cannot
slip past. A name is refused when ANY of its addresses is not public: an attacker who
controls a name can mix a private address in, and trying the public ones only would make
the outcome depend on which one answers. TLS still verifies the certificate against the host
name (httpcore sends the origin's host as SNI), not against the address.

Redirects are never followed (the adapters read a 3xx as a refusal), so no token goes to a
host it was not meant for; even a call that asks to follow one goes through this transport
again, host check and all, and httpx drops Authorization when the origin changes.
Proxies from the environment are ignored: a proxy would connect in our place, unchecked.

`allow_loopback` (PUBLISHER_EGRESS_ALLOW_LOOPBACK, refused in production) lets tests and local
trials reach fake platforms on 127.0.0.0/8 and ::1, over plain http too; it allows nothing
else (private, link-local, mapped addresses stay refused).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from hopcast_shared.public_address import IPAddress, is_loopback_host, why_not_public

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""The addresses a host name resolves to for a TCP port (the system resolver by default;
tests pass their own)."""


_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


class EgressRefused(Exception):
    """A platform call refused before anything was sent. The detail names the host and why,
    never the whole URL (its query may hold secrets)."""

    def __init__(self, host: str, why: str) -> None:
        self.host = _printable(host)
        self.why = why
        self.detail = f"egress to {self.host} refused: {why}"
        super().__init__(self.detail)


def _printable(host: str) -> str:
    return "".join(c if c.isalnum() or c in ".-:[]_" else "?" for c in host)[:100]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class EgressPolicy:
    """Where platform calls may go. `allowlists` maps a platform (BLUESKY, MASTODON, TWITTER,
    LINKEDIN) to the only hosts it may call; a platform missing from it may call any public
    host. `resolver` and `network` (what opens the sockets, given judged addresses only) are
    the system's unless a test routes them."""

    allow_loopback: bool = False
    allowlists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    resolver: Resolver = system_resolver
    network: httpcore.AsyncNetworkBackend | None = None

    def hosts_for(self, platform: str) -> frozenset[str]:
        return frozenset(h.lower().rstrip(".") for h in self.allowlists.get(platform, frozenset()))

    def why_refused(self, address: IPAddress) -> str | None:
        """Why a call may not connect to this address, or None."""
        # IPv4 127.0.0.0/8 and IPv6 ::1 only; a mapped or embedded loopback stays refused.
        if self.allow_loopback and (
            address in _LOOPBACK_V4 if isinstance(address, ipaddress.IPv4Address) else address == _LOOPBACK_V6
        ):
            return None
        why = why_not_public(address)
        return f"{address} ({why})" if why else None

    def check_url(self, url: httpx.URL, allowlist: frozenset[str]) -> None:
        """Raise EgressRefused for a URL no connection may be opened for."""
        host = url.host.lower().rstrip(".")
        if url.userinfo:
            raise EgressRefused(host, "credentials in the URL")
        if allowlist and host not in allowlist:
            raise EgressRefused(host, "not on the platform's egress allowlist")
        if url.scheme == "https":
            return
        if url.scheme == "http" and self.allow_loopback and is_loopback_host(host):
            return
        raise EgressRefused(host, "not https" if url.scheme == "http" else f"scheme {url.scheme!r} refused")


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, judges, then connects to the judged address only."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int, timeout_s: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(timeout_s):
                found = await self._policy.resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {_printable(host)} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {_printable(host)} ({type(exc).__name__})") from None
        addresses = []
        for text in found:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise EgressRefused(host, "resolved to something that is not an address") from None
            why = self._policy.why_refused(address)
            if why is not None:
                raise EgressRefused(host, f"resolves to {why}")
            addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"{_printable(host)} resolved to no address")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix socket", "platform calls go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, with every request's URL checked and its connection pool on the
    guarded backend. httpx 0.28 takes no network backend, so the pool it builds is replaced
    by one built the same way with ours (httpx and httpcore are pinned in constraints.txt;
    the SSRF tests fail if the guard is ever bypassed)."""

    def __init__(self, platform: str, policy: EgressPolicy, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        super().__init__(trust_env=False, limits=limits)
        # Trust roots may still come from SSL_CERT_FILE/SSL_CERT_DIR (an operator's choice);
        # proxies and .netrc credentials from the environment may not (see platform_client).
        ssl_context = httpx.create_ssl_context()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(policy, policy.network),
        )
        self._policy = policy
        self._allowlist = policy.hosts_for(platform)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(request.url, self._allowlist)
        return await super().handle_async_request(request)


def platform_client(
    platform: str,
    policy: EgressPolicy,
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    user_agent: str,
) -> httpx.AsyncClient:
    """The one way an adapter gets an HTTP client: guarded, no redirects, no proxies."""
    return httpx.AsyncClient(
        transport=GuardedTransport(platform, policy),
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
        trust_env=False,
    )
