"""The platform suite's setup: a real Bluesky PDS (hopcast_stack.pds: Node 22 and
@atproto/dev-env from npm, set up once into the state folder's tools/), accounts on it made
as a person would (createAccount, then createSession for the tokens an upstream connection
hands the publisher), and a proxy that can lose the answer to a call after the PDS acted on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hopcast_shared.settings import state_dir
from hopcast_stack.pds import RunningPds, start_pds


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.platforms)


@pytest.fixture(scope="session")
def pds() -> Iterator[RunningPds]:
    """A PLC directory and a PDS on free loopback ports for the session (set up first if needed)."""
    data = Path(tempfile.mkdtemp(prefix="hopcast-pds-"))
    started = time.monotonic()
    running = start_pds(state_dir() / "tools", data)
    print(f"\nPDS {running.url} ready {time.monotonic() - started:.1f}s after the suite asked for it")
    yield running
    running.stop()
    shutil.rmtree(data, ignore_errors=True)


@dataclass(frozen=True)
class PdsAccount:
    handle: str
    did: str
    password: str = field(repr=False)
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)


async def create_account(pds: RunningPds, name: str) -> PdsAccount:
    """A new account (handle `<name>-<random>.test`) and its first session's tokens."""
    handle = f"{name}-{uuid.uuid4().hex[:8]}.test"
    password = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=pds.url, timeout=30) as client:
        created = await client.post(
            "/xrpc/com.atproto.server.createAccount",
            json={"handle": handle, "email": f"{handle}@example.com", "password": password},
        )
        created.raise_for_status()
        session = await client.post(
            "/xrpc/com.atproto.server.createSession", json={"identifier": handle, "password": password}
        )
        session.raise_for_status()
    body = session.json()
    assert body["did"] == created.json()["did"] and body["handle"] == handle
    return PdsAccount(handle, body["did"], password, body["accessJwt"], body["refreshJwt"])


class LosingProxy:
    """HTTP/1.1 between an adapter and the PDS, one request per connection. A request whose
    path is in `lose` (counted down per path) is forwarded, the PDS acts on it, and the
    connection is then closed without an answer: a lost response."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.lose: dict[str, int] = {}
        self.lost: list[str] = []
        self.forwarded: list[str] = []
        self._client = httpx.AsyncClient(base_url=target, timeout=30)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
            length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
            body = await reader.readexactly(length) if length else b""
            keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "content-length")}
            answer = await self._client.request(method, target, headers=keep, content=body)
            path = target.split("?", 1)[0]
            self.forwarded.append(path)
            if self.lose.get(path, 0) > 0:
                self.lose[path] -= 1
                self.lost.append(path)
                return  # the PDS did it; the caller never hears
            skip = ("content-length", "transfer-encoding", "connection", "content-encoding")
            lines = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
            lines += [f"{k}: {v}" for k, v in answer.headers.items() if k.lower() not in skip]
            lines += [f"content-length: {len(answer.content)}", "connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + answer.content)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def aclose(self) -> None:
        await self._client.aclose()


@pytest.fixture
def make_account(pds: RunningPds) -> Callable[[str], Awaitable[PdsAccount]]:
    """Makes a new account on the session's PDS: `await make_account("alice")`."""
    return functools.partial(create_account, pds)


@pytest.fixture
async def losing_proxy(pds: RunningPds) -> AsyncIterator[tuple[LosingProxy, str]]:
    proxy = LosingProxy(pds.url)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield proxy, f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()
    await proxy.aclose()
