"""Who is asking an HTTP read: a bearer JWT, verified with PyJWT, naming the organizations
the caller may read (`organizations` claim).

`TokenVerifier.from_settings()` checks the signature against a JWKS URL or a PEM public key
(asymmetric algorithms only), and the issuer, audience and expiry. Locally, with nothing
configured, it trusts the development key pair kept in the state folder, which
`hopcast auth dev-token` signs with (`issue_dev_token`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from hopcast_shared.settings import HttpAuthSettings, SettingsError, load, state_dir

log = logging.getLogger(__name__)

# What the local services expect when nothing else is configured (never in production).
DEV_ISSUER = "hopcast-local"
DEV_AUDIENCE = "hopcast"
DEV_ALGORITHM = "ES256"
ORGANIZATIONS_CLAIM = "organizations"
# A token naming more organizations than this is refused rather than parsed.
MAX_ORGANIZATIONS = 1000

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


class Unauthorized(Exception):
    """No usable bearer token: answered 401. `error` is RFC 6750's code (None: none was sent)."""

    def __init__(self, reason: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(reason)
        self.error = error


class KeysUnavailable(Exception):
    """The identity provider's key set could not be fetched: answered 503, not 401."""


@dataclass(frozen=True)
class Caller:
    """A verified token: who it names and the organizations whose data it may read."""

    subject: str | None
    organizations: frozenset[uuid.UUID]

    def may_read(self, organization: uuid.UUID | str | None) -> bool:
        if organization is None:
            return False
        try:
            return uuid.UUID(str(organization)) in self.organizations
        except ValueError:
            return False


# Development keys ----------------------------------------------------------------------------


def dev_key_files(folder: Path | None = None) -> tuple[Path, Path]:
    """(private key, public key) of the local development key pair, under <state>/keys."""
    keys = (folder or state_dir()) / "keys"
    return keys / "http-auth-dev-key.pem", keys / "http-auth-dev-key.pub.pem"


def ensure_dev_key_pair(folder: Path | None = None) -> tuple[Path, Path]:
    """The development key pair, generated on first use: the private key mode 0600, published
    atomically so that services starting together all end up with the same one."""
    private, public = dev_key_files(folder)
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True)
        private.parent.chmod(0o700)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # mkstemp creates the file 0600; os.link never replaces a key another process published first.
        fd, temporary = tempfile.mkstemp(dir=private.parent, prefix=".http-auth-dev-key.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, private)
        finally:
            os.unlink(temporary)
    public_pem = (
        _private_key(private.read_bytes(), private)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    if not public.exists() or public.read_bytes() != public_pem:
        fd, temporary = tempfile.mkstemp(dir=public.parent, prefix=".http-auth-dev-key.pub.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(public_pem)
        os.chmod(temporary, 0o644)
        os.replace(temporary, public)
    return private, public


def _private_key(pem: bytes, where: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise SettingsError(f"the development signing key {where} is unreadable: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SettingsError(f"the development signing key {where} is not an EC key")
    return key


def dev_auth_env(folder: Path) -> dict[str, str]:
    """The HTTP_AUTH_* settings that make services trust `hopcast auth dev-token`'s tokens
    (what the local stack and the test services run with)."""
    _, public = ensure_dev_key_pair(folder)
    return {
        "HTTP_AUTH_PUBLIC_KEY_FILE": str(public),
        "HTTP_AUTH_ISSUER": DEV_ISSUER,
        "HTTP_AUTH_AUDIENCE": DEV_AUDIENCE,
        "HTTP_AUTH_ALGORITHMS": DEV_ALGORITHM,
    }


def issue_token(
    private_key_pem: bytes,
    organizations: Iterable[uuid.UUID | str],
    *,
    issuer: str,
    audience: str,
    ttl_s: int = 3600,
    subject: str = "dev",
    algorithm: str = DEV_ALGORITHM,
    now: float | None = None,
    headers: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A signed token for `organizations` (what an identity provider would issue)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        ORGANIZATIONS_CLAIM: [str(uuid.UUID(str(o))) for o in organizations],
        **(extra or {}),
    }
    return jwt.encode(claims, private_key_pem, algorithm=algorithm, headers=dict(headers) if headers else None)


def issue_dev_token(
    organizations: Iterable[uuid.UUID | str],
    *,
    ttl_s: int = 3600,
    folder: Path | None = None,
    issuer: str = DEV_ISSUER,
    audience: str = DEV_AUDIENCE,
    subject: str = "dev",
) -> str:
    """A token signed with the local development key (created if missing)."""
    private, _ = ensure_dev_key_pair(folder)
    return issue_token(
        private.read_bytes(), organizations, issuer=issuer, audience=audience, ttl_s=ttl_s, subject=subject
    )


# Verification --------------------------------------------------------------------------------


def _algorithms_for(key: PublicKey) -> set[str]:
    """The algorithms a key of this type verifies (a P-256 key never verifies an RS256 token)."""
    if isinstance(key, rsa.RSAPublicKey):
        return {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": {"ES256"}, "secp384r1": {"ES384"}, "secp521r1": {"ES512"}}.get(key.curve.name, set())
    return {"EdDSA"}


def load_public_key(pem: str, where: str) -> PublicKey:
    # A PEM passed in one environment variable often has its line breaks written as \n.
    text = pem.replace("\\n", "\n").strip()
    try:
        key = serialization.load_pem_public_key(text.encode())
    except ValueError as exc:
        raise SettingsError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, PublicKey):
        raise SettingsError(f"{where}: {type(key).__name__} keys are not supported (RSA, EC or Ed25519/Ed448)")
    return key


class TokenVerifier:
    """Turns an `Authorization` header into a `Caller`, or raises `Unauthorized`."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str],
        leeway_s: float,
        public_key: PublicKey | None = None,
        jwks: jwt.PyJWKClient | None = None,
    ) -> None:
        if (public_key is None) == (jwks is None):
            raise ValueError("a verifier needs exactly one of a public key and a JWKS client")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = sorted(set(algorithms))
        self.leeway_s = leeway_s
        self._public_key = public_key
        self._jwks = jwks

    @classmethod
    def from_settings(cls, settings: HttpAuthSettings | None = None) -> TokenVerifier:
        settings = settings or load(HttpAuthSettings)
        # Production settings cannot lack these (HttpAuthSettings refuses to load without them).
        issuer = settings.issuer or DEV_ISSUER
        audience = settings.audience or DEV_AUDIENCE
        allowed = set(settings.allowed_algorithms)
        if settings.jwks_url is not None:
            client = jwt.PyJWKClient(
                settings.jwks_url,
                cache_keys=True,
                lifespan=settings.jwks_cache_s,
                timeout=settings.jwks_timeout_s,
                cooldown_duration=settings.jwks_refresh_cooldown_s,
            )
            return cls(issuer=issuer, audience=audience, algorithms=allowed, leeway_s=settings.leeway_s, jwks=client)
        if settings.public_key is not None:
            key = load_public_key(settings.public_key, "HTTP_AUTH_PUBLIC_KEY")
        elif settings.public_key_file is not None:
            key = load_public_key(
                settings.public_key_file.read_text(), f"HTTP_AUTH_PUBLIC_KEY_FILE {settings.public_key_file}"
            )
        else:
            _, public = ensure_dev_key_pair()
            key = load_public_key(public.read_text(), f"the development public key {public}")
        fitting = allowed & _algorithms_for(key)
        if not fitting:
            raise SettingsError(
                f"HTTP_AUTH_ALGORITHMS={settings.algorithms} has no algorithm for the configured "
                f"{type(key).__name__.removeprefix('_')}"
            )
        return cls(issuer=issuer, audience=audience, algorithms=fitting, leeway_s=settings.leeway_s, public_key=key)

    async def authenticate(self, authorization: str | None) -> Caller:
        token = bearer_token(authorization)
        if self._jwks is not None:
            # The key set may need fetching (blocking I/O): off the event loop.
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)

    def verify(self, token: str) -> Caller:
        try:
            key: Any = self._jwks.get_signing_key_from_jwt(token) if self._jwks is not None else self._public_key
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(str(exc)) from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"{type(exc).__name__}: {exc}") from None
        return Caller(subject=_subject(claims), organizations=_organizations(claims))


def bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise Unauthorized("no Authorization header", error=None)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header is not `Bearer <token>`", error="invalid_request")
    return token.strip()


def _subject(claims: Mapping[str, Any]) -> str | None:
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else None


def _organizations(claims: Mapping[str, Any]) -> frozenset[uuid.UUID]:
    raw = claims.get(ORGANIZATIONS_CLAIM)
    if not isinstance(raw, list) or len(raw) > MAX_ORGANIZATIONS or not all(isinstance(o, str) for o in raw):
        raise Unauthorized(f"the `{ORGANIZATIONS_CLAIM}` claim must be a list of organization ids")
    try:
        return frozenset(uuid.UUID(o) for o in raw)
    except ValueError:
        raise Unauthorized(f"the `{ORGANIZATIONS_CLAIM}` claim holds something that is not an id") from None
