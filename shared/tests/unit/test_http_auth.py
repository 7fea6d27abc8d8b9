"""Bearer tokens for the HTTP reads: the settings (production refuses to start without them), the
verifier (PyJWT; signature, algorithm, issuer, audience, expiry, organizations), a JWKS served
by a real local HTTP server, the development key pair and `hopcast auth dev-token`, and the
router that answers 401, 404 or 200."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from typer.testing import CliRunner

from hopcast_shared.auth import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    Caller,
    KeysUnavailable,
    TokenVerifier,
    Unauthorized,
    dev_key_files,
    ensure_dev_key_pair,
    issue_token,
)
from hopcast_shared.auth_cli import app as auth_app
from hopcast_shared.http import NOT_FOUND, JsonResponse, JsonRoute, JsonRouter
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import HttpAuthSettings, ServiceSettings, SettingsError, load

ISSUER = "https://idp.example/"
AUDIENCE = "hopcast-api"
ORG = uuid.UUID("5f0d7c1e-8a41-4c8e-9d43-2b1f6a7e9c10")
OTHER = uuid.UUID("0b8e2f4a-6c3d-4e1f-a2b5-c7d9e0f1a2b3")


def pem_private(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def pem_public(key: Any) -> str:
    return bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("HTTP_AUTH_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("HOPCAST_ENV", raising=False)
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def verifier_for(key: Any, **settings: Any) -> TokenVerifier:
    values = {"public_key": pem_public(key), "issuer": ISSUER, "audience": AUDIENCE, **settings}
    return TokenVerifier.from_settings(HttpAuthSettings(**values))


def token(key: Any, *, algorithm: str = "ES256", **changes: Any) -> str:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "algorithm": algorithm, **changes}
    return issue_token(pem_private(key), [ORG], **values)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, "organizations": [str(ORG)], **changes}


# Settings -------------------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_key_an_issuer_and_an_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPCAST_ENV", "production")
    with pytest.raises(SettingsError) as caught:
        load(HttpAuthSettings)
    message = str(caught.value)
    assert "HTTP_AUTH_JWKS_URL or HTTP_AUTH_PUBLIC_KEY" in message
    assert "HTTP_AUTH_ISSUER" in message and "HTTP_AUTH_AUDIENCE" in message
    # Blank values are no configuration either.
    monkeypatch.setenv("HTTP_AUTH_ISSUER", " ")
    monkeypatch.setenv("HTTP_AUTH_AUDIENCE", "")
    monkeypatch.setenv("HTTP_AUTH_JWKS_URL", "https://idp.example/.well-known/jwks.json")
    with pytest.raises(SettingsError, match="HTTP_AUTH_ISSUER"):
        load(HttpAuthSettings)
    monkeypatch.setenv("HTTP_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("HTTP_AUTH_AUDIENCE", AUDIENCE)
    settings = load(HttpAuthSettings)
    assert settings.production and settings.jwks_url is not None


def test_a_service_in_production_does_not_serve_without_token_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = ServiceRuntime(
        ServiceDefinition(name="billing", consumes=[], handlers={}),
        settings=ServiceSettings(name="billing", database_url="postgresql://x@127.0.0.1:1/x", http_port=18083),
    )
    monkeypatch.setenv("HOPCAST_ENV", "production")
    with pytest.raises(SettingsError, match="required in production"):
        runtime.asgi()


@pytest.mark.parametrize("algorithms", ["HS256", "none", "RS256,HS512", ""])
def test_only_asymmetric_algorithms_may_be_allowed(algorithms: str) -> None:
    with pytest.raises(SettingsError, match="algorithms"):
        load(HttpAuthSettings, algorithms=algorithms)


def test_one_key_source_and_https_in_production(ec_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(SettingsError, match="not several"):
        load(HttpAuthSettings, jwks_url="https://idp.example/jwks", public_key=pem_public(ec_key))
    with pytest.raises(SettingsError, match="https in production"):
        load(
            HttpAuthSettings,
            jwks_url="http://idp.example/jwks",
            issuer=ISSUER,
            audience=AUDIENCE,
            hopcast_env="production",
        )
    with pytest.raises(SettingsError, match="no file"):
        load(HttpAuthSettings, public_key_file="/nonexistent/key.pem")
    with pytest.raises(SettingsError, match="not a PEM public key"):
        TokenVerifier.from_settings(HttpAuthSettings(public_key="-----BEGIN PUBLIC KEY-----\nnope\n"))


def test_a_key_verifies_only_the_algorithms_of_its_type() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert verifier_for(rsa_key).algorithms == ["RS256"]
    assert verifier_for(ec.generate_private_key(ec.SECP256R1())).algorithms == ["ES256"]
    assert verifier_for(ed25519.Ed25519PrivateKey.generate()).algorithms == ["EdDSA"]
    with pytest.raises(SettingsError, match="no algorithm"):
        verifier_for(rsa_key, algorithms="ES256,EdDSA")


# The verifier ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "algorithm"), [("ec", "ES256"), ("rsa", "RS256"), ("ed25519", "EdDSA")], ids=["ES256", "RS256", "EdDSA"]
)
def test_a_good_token_names_its_organizations(kind: str, algorithm: str) -> None:
    key: Any = {
        "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[kind]()
    caller = verifier_for(key).verify(token(key, algorithm=algorithm, subject="ana"))
    assert caller == Caller(subject="ana", organizations=frozenset({ORG}))
    assert caller.may_read(ORG) and caller.may_read(str(ORG)) and not caller.may_read(OTHER)
    assert not caller.may_read(None) and not caller.may_read("not-an-id")


def test_a_pem_with_escaped_line_breaks_is_accepted(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = verifier_for(ec_key, public_key=pem_public(ec_key).replace("\n", "\\n"))
    assert verifier.verify(token(ec_key)).organizations == {ORG}


def bad_tokens(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    public = pem_public(key).encode()
    now = int(time.time())
    stranger = ec.generate_private_key(ec.SECP256R1())
    return {
        "another key": token(stranger),
        "wrong issuer": token(key, issuer="https://evil.example/"),
        "wrong audience": token(key, audience="another-api"),
        "expired beyond the leeway": token(key, now=now - 700, ttl_s=600),
        "not yet valid": token(key, now=now + 120),
        "alg none": hand_made({"alg": "none", "typ": "JWT"}, claims()),
        "alg none, upper case": hand_made({"alg": "NONE", "typ": "JWT"}, claims()),
        "HS256 keyed with the public key": _hs256(public, claims()),
        "RS256 header on an EC key": hand_made({"alg": "RS256", "typ": "JWT"}, claims(), b"x" * 256),
        "no exp": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, pem_private(key), algorithm="ES256"),
        "iat in the future": jwt.encode(claims(iat=now + 3600), pem_private(key), algorithm="ES256"),
        "no organizations": jwt.encode(
            {k: v for k, v in claims().items() if k != "organizations"}, pem_private(key), algorithm="ES256"
        ),
        "organizations not a list": jwt.encode(claims(organizations=str(ORG)), pem_private(key), algorithm="ES256"),
        "organizations not ids": jwt.encode(claims(organizations=["acme"]), pem_private(key), algorithm="ES256"),
        "garbage": "not.a.token",
    }


def _hs256(secret: bytes, body: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(body).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


@pytest.mark.parametrize(
    "reason",
    [
        "another key",
        "wrong issuer",
        "wrong audience",
        "expired beyond the leeway",
        "not yet valid",
        "alg none",
        "alg none, upper case",
        "HS256 keyed with the public key",
        "RS256 header on an EC key",
        "no exp",
        "iat in the future",
        "no organizations",
        "organizations not a list",
        "organizations not ids",
        "garbage",
    ],
)
def test_a_bad_token_is_unauthorized(ec_key: ec.EllipticCurvePrivateKey, reason: str) -> None:
    verifier = verifier_for(ec_key)
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(bad_tokens(ec_key)[reason])
    assert caught.value.error == "invalid_token"


def test_the_leeway_forgives_a_little_clock_skew_and_no_more(ec_key: ec.EllipticCurvePrivateKey) -> None:
    now = int(time.time())
    just_expired = token(ec_key, now=now - 610, ttl_s=600)  # 10 s ago
    assert verifier_for(ec_key).verify(just_expired).organizations == {ORG}
    with pytest.raises(Unauthorized):
        verifier_for(ec_key, leeway_s=0).verify(just_expired)
    almost_valid = token(ec_key, now=now + 10)
    assert verifier_for(ec_key).verify(almost_valid).organizations == {ORG}
    with pytest.raises(Unauthorized):
        verifier_for(ec_key, leeway_s=0).verify(almost_valid)


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   "])
async def test_no_bearer_token_is_unauthorized(ec_key: ec.EllipticCurvePrivateKey, header: str | None) -> None:
    with pytest.raises(Unauthorized):
        await verifier_for(ec_key).authenticate(header)


# JWKS, served by a real HTTP server -----------------------------------------------------------


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """An identity provider's key set endpoint; the test fills `keys` and counts fetches."""
    state: dict[str, Any] = {"keys": [], "fetches": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["fetches"] += 1
            body = json.dumps({"keys": state["keys"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()


def jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    public: dict[str, Any] = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": alg}


async def test_a_jwks_url_verifies_by_key_id_and_refetches_for_a_new_key(
    jwks_server: tuple[str, dict[str, Any]],
) -> None:
    url, state = jwks_server
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state["keys"] = [jwk(first, "k1", "RS256")]
    verifier = TokenVerifier.from_settings(
        HttpAuthSettings(jwks_url=url, issuer=ISSUER, audience=AUDIENCE, jwks_refresh_cooldown_s=0)
    )
    caller = await verifier.authenticate(f"Bearer {token(first, algorithm='RS256', headers={'kid': 'k1'})}")
    assert caller.organizations == {ORG}
    # The provider rotates: a token with the new key id is verified after one more fetch.
    second = ec.generate_private_key(ec.SECP256R1())
    state["keys"] = [jwk(first, "k1", "RS256"), jwk(second, "k2", "ES256")]
    fetched = state["fetches"]
    caller = await verifier.authenticate(f"Bearer {token(second, headers={'kid': 'k2'})}")
    assert caller.organizations == {ORG} and state["fetches"] > fetched
    # A token signed by a key the set does not hold, or naming one key and signed by another, is refused.
    stranger = ec.generate_private_key(ec.SECP256R1())
    for bad in (token(stranger, headers={"kid": "k3"}), token(stranger, headers={"kid": "k2"})):
        with pytest.raises(Unauthorized):
            await verifier.authenticate(f"Bearer {bad}")
    # A key set entry of a symmetric kind never verifies (HS is not allowed).
    state["keys"].append({"kty": "oct", "kid": "h1", "alg": "HS256", "k": b64(b"s" * 32)})
    with pytest.raises(Unauthorized):
        await verifier.authenticate(f"Bearer {_hs256(b's' * 32, claims())}")


async def test_an_unreachable_jwks_url_is_unavailable_not_unauthorized(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = TokenVerifier.from_settings(
        HttpAuthSettings(jwks_url="http://127.0.0.1:9/jwks", issuer=ISSUER, audience=AUDIENCE, jwks_timeout_s=1)
    )
    with pytest.raises(KeysUnavailable):
        await verifier.authenticate(f"Bearer {token(ec_key, headers={'kid': 'k1'})}")


# The development key pair and `hopcast auth dev-token` ----------------------------------------


def test_the_dev_key_pair_is_private_and_the_same_for_concurrent_first_starts(clean_env: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        pairs = list(pool.map(lambda _: ensure_dev_key_pair(), range(8)))
    private, public = dev_key_files()
    assert all(pair == (private, public) for pair in pairs)
    assert private.parent == clean_env / "keys"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert "PRIVATE" not in public.read_text() and "PUBLIC KEY" in public.read_text()
    assert not [p for p in private.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_dev_token_is_accepted_by_a_service_with_no_auth_settings_locally() -> None:
    result = CliRunner().invoke(auth_app, ["dev-token", "-o", str(ORG), "--organization", str(OTHER), "--ttl", "60"])
    assert result.exit_code == 0, result.output
    caller = TokenVerifier.from_settings(load(HttpAuthSettings)).verify(result.output.strip())
    assert caller.organizations == {ORG, OTHER}
    claims_ = jwt.decode(result.output.strip(), options={"verify_signature": False})
    assert (claims_["iss"], claims_["aud"], claims_["exp"] - claims_["iat"]) == (DEV_ISSUER, DEV_AUDIENCE, 60)


def test_dev_token_follows_a_configured_key_only_when_it_is_the_dev_key(
    monkeypatch: pytest.MonkeyPatch, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    _, public = ensure_dev_key_pair()
    monkeypatch.setenv("HTTP_AUTH_PUBLIC_KEY", public.read_text())
    monkeypatch.setenv("HTTP_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("HTTP_AUTH_AUDIENCE", AUDIENCE)
    result = CliRunner().invoke(auth_app, ["dev-token", "-o", str(ORG)])
    assert result.exit_code == 0, result.output
    # Signed for the configured issuer and audience, so the services configured so accept it.
    assert TokenVerifier.from_settings(load(HttpAuthSettings)).verify(result.output.strip()).organizations == {ORG}
    monkeypatch.setenv("HTTP_AUTH_PUBLIC_KEY", pem_public(ec_key))
    result = CliRunner().invoke(auth_app, ["dev-token", "-o", str(ORG)])
    assert isinstance(result.exception, SettingsError) and "not the development key" in str(result.exception)


def test_dev_token_is_refused_in_production_and_for_a_bad_organization(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(auth_app, ["dev-token", "-o", "acme"])
    assert result.exit_code == 2 and "not an organization id" in result.output
    monkeypatch.setenv("HOPCAST_ENV", "production")
    monkeypatch.setenv("HTTP_AUTH_JWKS_URL", "https://idp.example/jwks")
    monkeypatch.setenv("HTTP_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("HTTP_AUTH_AUDIENCE", AUDIENCE)
    result = CliRunner().invoke(auth_app, ["dev-token", "-o", str(ORG)])
    assert result.exit_code != 0 and isinstance(result.exception, SettingsError)
    assert "production" in str(result.exception)
    assert not dev_key_files()[0].exists()


# The router -----------------------------------------------------------------------------------


class Recorder:
    """A minimal ASGI client: send one request, keep the response."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            self.body += message.get("body", b"")


async def call(router: JsonRouter, path: str, authorization: str | None = None) -> Recorder:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": headers}
    recorder = Recorder()

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": b""}

    await router(scope, receive, recorder)
    return recorder


def router_for(key: ec.EllipticCurvePrivateKey) -> tuple[JsonRouter, list[str]]:
    """Routes whose objects belong to ORG or OTHER; `fallback` records what it was handed."""
    owners = {"a": ORG, "b": OTHER}
    handed: list[str] = []

    async def thing(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        owner = owners.get(path["id"])
        if owner is None:
            return JsonResponse(404, {"error": "no such thing"})
        return JsonResponse(200, {"id": path["id"], "organization_id": str(owner)}, organization=owner)

    async def forgetful(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        return JsonResponse(200, {"secret": "of whom?"})

    async def fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"open"})

    routes = [JsonRoute("/things/{id}", thing), JsonRoute("/forgetful/{id}", forgetful)]
    return JsonRouter(routes, fallback, verifier=verifier_for(key)), handed


async def test_the_router_answers_401_404_or_200(ec_key: ec.EllipticCurvePrivateKey) -> None:
    router, handed = router_for(ec_key)
    anonymous = await call(router, "/things/a")
    assert anonymous.status == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="hopcast"'
    forged = await call(router, "/things/a", f"Bearer {token(ec.generate_private_key(ec.SECP256R1()))}")
    assert forged.status == 401
    assert forged.headers["www-authenticate"] == 'Bearer realm="hopcast", error="invalid_token"'
    assert str(ORG) not in (anonymous.body + forged.body).decode()

    bearer = f"Bearer {token(ec_key)}"
    own = await call(router, "/things/a", bearer)
    assert own.status == 200 and json.loads(own.body)["organization_id"] == str(ORG)
    assert own.headers["cache-control"] == "no-store"
    foreign, missing = await call(router, "/things/b", bearer), await call(router, "/things/zzz", bearer)
    assert (
        (foreign.status, foreign.body) == (missing.status, missing.body) == (404, json.dumps(NOT_FOUND.body).encode())
    )
    # A route that does not say whose data it answers with sends nothing.
    assert (await call(router, "/forgetful/a", bearer)).status == 404
    # Health, readiness and metrics are the fallback's, with no token.
    for path in ("/health", "/ready", "/metrics"):
        assert (await call(router, path)).status == 200
    assert handed == ["/health", "/ready", "/metrics"]
