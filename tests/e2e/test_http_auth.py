"""Every HTTP read route of every service, against the running services: 401 without a token or
with a bad one, 404 for another organization's object (the same answer as an object that does
not exist), 200 for the caller's own. The routes come from the services' own definitions, so
a route added without being covered here fails `test_every_route_is_covered`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib
import inspect
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hopcast_shared.auth import DEV_AUDIENCE, DEV_ISSUER, dev_key_files, issue_token
from hopcast_shared.crypto import Keyring
from hopcast_shared.topics import PUBLISHER
from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.services import ServiceSet, installed_services
from hopcast_stack.upstream import Upstream

pytestmark = pytest.mark.e2e

BODY = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."


class _NoRuntime:
    """Routes are built from a runtime they only use when called: enough to list them."""


def service_routes() -> list[tuple[str, str]]:
    """(service, route template) of every installed service, from its own ServiceDefinition."""
    found = []
    for name, module in installed_services().items():
        bootstrap = importlib.import_module(f"{module}.bootstrap")
        kwargs: dict[str, Any] = {}
        if "keyring" in inspect.signature(bootstrap.definition).parameters:
            kwargs["keyring"] = Keyring.generate()
        definition = bootstrap.definition(**kwargs)
        for route in definition.http_routes(_NoRuntime()) if definition.http_routes else []:
            found.append((name, route.template))
    return found


ROUTES = service_routes()
ROUTE_IDS = [f"{service} {template}" for service, template in ROUTES]


@dataclass(frozen=True)
class Org:
    """One organization's objects, by the first segment of the routes that name them."""

    org: str
    ids: dict[str, str]

    def path(self, template: str) -> str:
        kind = template.strip("/").split("/")[0]
        assert kind in self.ids, f"{template}: no {kind} id known to this test; add one to the world"
        return template.replace("{id}", self.ids[kind])


@dataclass(frozen=True)
class World:
    services: ServiceSet
    a: Org
    b: Org


async def _published(t: Tenant, dashboard: Dashboard) -> Org:
    await t.create(credits=300, accounts=("MASTODON",), materials=(BODY,))
    schedule = await t.schedule(["MASTODON"])
    await t.landed()
    run = await t.trigger(schedule)
    assert await dashboard.outcome(run, within=60) == "PUBLISHED"
    [post] = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    return Org(
        t.org,
        {
            "organizations": t.org,
            "brands": t.brand,
            "schedules": schedule,
            "runs": run,
            "posts": post["data"]["post_id"],
            "pending-posts": post["data"]["pending_post_id"],
            "social-accounts": post["data"]["social_account_id"],
        },
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(upstream: Upstream, dashboard: Dashboard, hopcast: ServiceSet) -> AsyncIterator[World]:
    a, b = await asyncio.gather(
        _published(Tenant(upstream, dashboard, hopcast), dashboard),
        _published(Tenant(upstream, dashboard, hopcast), dashboard),
    )
    yield World(hopcast, a, b)


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _get(url: str, authorization: str | None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (http://127.0.0.1)
            return response.status, _lower(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers), json.loads(exc.read() or b"null")


async def get(world: World, service: str, path: str, authorization: str | None) -> tuple[int, dict[str, str], Any]:
    return await asyncio.to_thread(_get, world.services.url(service, path), authorization)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
    return f"{signing_input.decode()}.{_b64(sign(signing_input))}"


def bad_tokens(services: ServiceSet, org: str) -> dict[str, str]:
    """Tokens for `org` that the services must refuse, each for one reason."""
    private = dev_key_files(services.state_dir)[0].read_bytes()
    public = dev_key_files(services.state_dir)[1].read_bytes()
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = int(time.time())
    claims = {"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": "x", "iat": now, "exp": now + 600, "organizations": [org]}
    return {
        "signed by another key": issue_token(stranger, [org], issuer=DEV_ISSUER, audience=DEV_AUDIENCE),
        "wrong issuer": issue_token(private, [org], issuer="https://idp.example", audience=DEV_AUDIENCE),
        "wrong audience": issue_token(private, [org], issuer=DEV_ISSUER, audience="another-api"),
        "expired": issue_token(private, [org], issuer=DEV_ISSUER, audience=DEV_AUDIENCE, now=now - 7200, ttl_s=3600),
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, claims, lambda _: b""),
        # The public key used as an HMAC secret: the classic confusion of algorithms.
        "HS256 with the public key": _unsigned(
            {"alg": "HS256", "typ": "JWT"}, claims, lambda data: hmac.new(public, data, hashlib.sha256).digest()
        ),
        "not yet valid": issue_token(private, [org], issuer=DEV_ISSUER, audience=DEV_AUDIENCE, now=now + 3600),
    }


BAD = [
    "signed by another key",
    "wrong issuer",
    "wrong audience",
    "expired",
    "alg none",
    "HS256 with the public key",
    "not yet valid",
]


def test_every_route_is_covered() -> None:
    """Every service serves reads, and every route names an object this suite builds."""
    assert {service for service, _ in ROUTES} == set(installed_services())
    assert len(ROUTES) >= 8, ROUTES
    known = {"organizations", "brands", "schedules", "runs", "posts", "pending-posts", "social-accounts"}
    assert {template.strip("/").split("/")[0] for _, template in ROUTES} <= known, ROUTES


@pytest.mark.parametrize(("service", "template"), ROUTES, ids=ROUTE_IDS)
async def test_a_route_without_a_token_is_401_with_a_bearer_challenge(
    world: World, service: str, template: str
) -> None:
    status, headers, body = await get(world, service, world.a.path(template), None)
    assert status == 401, body
    assert headers.get("www-authenticate", "").startswith("Bearer"), headers
    assert world.a.org not in json.dumps(body)
    status, headers, _ = await get(world, service, world.a.path(template), "Basic dXNlcjpwYXNz")
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("reason", BAD)
@pytest.mark.parametrize(("service", "template"), ROUTES, ids=ROUTE_IDS)
async def test_a_route_refuses_a_bad_token_with_401(world: World, service: str, template: str, reason: str) -> None:
    token = bad_tokens(world.services, world.a.org)[reason]
    status, headers, body = await get(world, service, world.a.path(template), f"Bearer {token}")
    assert status == 401, (reason, body)
    assert 'error="invalid_token"' in headers.get("www-authenticate", ""), headers
    assert world.a.org not in json.dumps(body)


@pytest.mark.parametrize(("service", "template"), ROUTES, ids=ROUTE_IDS)
async def test_another_organizations_object_is_404_like_a_missing_one(
    world: World, service: str, template: str
) -> None:
    token = f"Bearer {world.services.token([world.a.org])}"
    status, _, foreign = await get(world, service, world.b.path(template), token)
    assert status == 404, foreign
    missing = Org(world.a.org, {kind: str(uuid.uuid4()) for kind in world.a.ids})
    status, _, unknown = await get(world, service, missing.path(template), token)
    assert status == 404
    assert foreign == unknown, "another organization's object must not be told apart from a missing one"
    # The owner's token reads it: the 404 was the organization's, not the object's.
    status, _, body = await get(world, service, world.b.path(template), f"Bearer {world.services.token([world.b.org])}")
    assert status == 200, body


@pytest.mark.parametrize(("service", "template"), ROUTES, ids=ROUTE_IDS)
async def test_the_callers_own_object_is_200(world: World, service: str, template: str) -> None:
    # A token may name several organizations; each of them is readable with it.
    token = f"Bearer {world.services.token([world.b.org, world.a.org])}"
    status, _, body = await get(world, service, world.a.path(template), token)
    assert status == 200, body
    assert body.get("organization_id", world.a.org) == world.a.org
    assert world.b.org not in json.dumps(body)


async def test_health_ready_and_metrics_stay_open_and_metrics_name_no_organization(world: World) -> None:
    for service in installed_services():
        for path in ("/health", "/ready"):
            assert (await get(world, service, path, None))[0] == 200, (service, path)
        text = await asyncio.to_thread(
            lambda url: urllib.request.urlopen(url, timeout=5).read().decode(),  # noqa: S310
            world.services.url(service, "/metrics"),
        )
        assert "hopcast_messages_total" in text
        # The readiness just checked, for the alerts on readiness (deploy/observability/alerts.yaml).
        assert f'hopcast_ready{{service="{service}"}} 1.0' in text
        for org in (world.a, world.b):
            for value in org.ids.values():
                assert value not in text, f"{service} /metrics carries tenant data ({value})"
