"""Repository-wide test setup.

Real tracing (the SDK provider, exporting nowhere) for every test; and, on the session's
real stack (the `stack` fixture of hopcast_stack's pytest plugin), per-test isolation:
topics under a unique prefix and a fresh database.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings, TelemetrySettings
from hopcast_shared.telemetry import setup_tracing
from hopcast_shared.topics import ensure_topics

setup_tracing("tests", TelemetrySettings(otel_exporter_otlp_endpoint=None))


# When pytest-timeout fails the test (its own timer counts every fixture's setup, the session's
# stack included): set by the hook below, read by `_tasks_before_a_timeout`.
_TIMEOUT_AT = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Any:
    item.stash[_TIMEOUT_AT] = time.monotonic() + settings.timeout
    return (yield)


@pytest.fixture(autouse=True)
async def _tasks_before_a_timeout(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """An integration or end-to-end test about to time out prints what each asyncio task awaits,
    5 s before pytest-timeout fails it. pytest-timeout prints only the threads' stacks, and for an
    async test those show the event loop waiting in select(), not the await that never returned."""
    timeout_at = request.node.stash.get(_TIMEOUT_AT, None)
    if timeout_at is None or not any(request.node.get_closest_marker(name) for name in ("integration", "e2e")):
        yield
        return
    # asyncio's loop clock is time.monotonic.
    handle = asyncio.get_running_loop().call_at(timeout_at - 5, _print_awaits, request.node.nodeid)
    try:
        yield
    finally:
        handle.cancel()


def _print_awaits(test: str) -> None:
    """Each pending task of the loop and the chain of awaits it is suspended in, innermost last
    (through `async with` blocks of @asynccontextmanager functions too)."""
    print(f"\n{test} is about to time out; the asyncio tasks and what they await:", file=sys.stderr)
    for task in asyncio.all_tasks():
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while awaited is not None and len(chain) < 50:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            frame = frame or getattr(awaited, "ag_frame", None)
            if frame is None:
                break
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            manager = frame.f_locals.get("self") if frame.f_code.co_name in ("__aenter__", "__aexit__") else None
            if manager is not None and hasattr(manager, "gen"):  # contextlib's: its generator runs the block
                awaited = manager.gen
                continue
            awaited = (
                getattr(awaited, "cr_await", None)
                or getattr(awaited, "gi_yieldfrom", None)
                or getattr(awaited, "ag_await", None)
            )
        print(f"- {task.get_name()}:\n    " + "\n    ".join(chain or [repr(task)]), file=sys.stderr)


@pytest.fixture
async def kafka(stack: Any) -> KafkaSettings:
    """KafkaSettings whose topics are this test's alone (a unique prefix), already created."""
    settings = stack.kafka_settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}.", "partitions": 3})
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def database_url(stack: Any) -> str:
    """A fresh, empty database (pgvector available) for this test."""
    return await stack.new_database("test")


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer, as an upstream system would use."""
    p = AIOKafkaProducer(enable_idempotence=True, **connection_kwargs(kafka))
    await p.start()
    yield p
    await p.stop()


class HttpReads:
    """A service's JSON routes behind the kernel's router (bearer tokens, tenant check), on a key
    of their own: `await get(path, organizations=[...])` answers (status, body); without
    `organizations` no token is sent."""

    def __init__(self, routes: Any) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from hopcast_shared.auth import TokenVerifier
        from hopcast_shared.http import JsonRouter

        key = ec.generate_private_key(ec.SECP256R1())
        self._pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        verifier = TokenVerifier(
            issuer="https://idp.test/",
            audience="hopcast",
            algorithms={"ES256"},
            leeway_s=30,
            public_key=key.public_key(),
        )
        self._router = JsonRouter(routes, self._unrouted, verifier=verifier)

    @staticmethod
    async def _unrouted(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"no JSON route for {scope['path']}")

    async def get(self, path: str, *, organizations: Any = None) -> tuple[int, Any]:
        import json

        from hopcast_shared.auth import issue_token

        headers = []
        if organizations is not None:
            token = issue_token(
                self._pem, organizations, issuer="https://idp.test/", audience="hopcast", algorithm="ES256"
            )
            headers.append((b"authorization", f"Bearer {token}".encode()))
        path, _, query = path.partition("?")
        scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode(), "headers": headers}
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["body"] += message.get("body", b"")

        await self._router(scope, receive, send)
        return answer["status"], json.loads(answer["body"])


@pytest.fixture
def http_reads() -> type[HttpReads]:
    """`http_reads(routes)`: read a service's routes over the kernel's HTTP layer with tokens."""
    return HttpReads
