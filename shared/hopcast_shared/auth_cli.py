"""`hopcast auth dev-token`: a bearer token for the local services' HTTP reads, signed with the
development key pair in the state folder (created on first use), naming the organizations given.

Refused with HOPCAST_ENV=production, and when HTTP_AUTH_* names another key than the development
one (the services would refuse its tokens); a configured issuer and audience are signed for.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hopcast_shared.auth import DEV_AUDIENCE, DEV_ISSUER, ensure_dev_key_pair, issue_dev_token, load_public_key
from hopcast_shared.settings import HttpAuthSettings, SettingsError, load

app = typer.Typer(no_args_is_help=True, help="Bearer tokens for the services' HTTP reads (development).")


@app.callback()
def auth() -> None:
    """Bearer tokens for the services' HTTP reads (development)."""


def _organization(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an organization id (a UUID)") from None


def _der(pem: str, where: str) -> bytes:
    return load_public_key(pem, where).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@app.command("dev-token")
def dev_token(
    organization: Annotated[
        list[str],
        typer.Option("--organization", "-o", metavar="ID", help="an organization the token may read (repeatable)"),
    ],
    ttl: Annotated[int, typer.Option(min=1, max=7 * 24 * 3600, help="seconds until it expires")] = 3600,
    subject: Annotated[str, typer.Option(help="the token's `sub`")] = "dev",
) -> None:
    """Print a development token for the organizations, e.g.
    `curl -H "Authorization: Bearer $(hopcast auth dev-token -o ID)" 127.0.0.1:8083/organizations/ID/credits`."""
    organizations = [_organization(o) for o in organization]
    settings = load(HttpAuthSettings)
    if settings.production:
        raise SettingsError("development tokens are not issued with HOPCAST_ENV=production")
    if settings.jwks_url is not None:
        raise SettingsError("HTTP_AUTH_JWKS_URL is set: the services would refuse a development token")
    _, public = ensure_dev_key_pair()
    configured = settings.public_key or (settings.public_key_file.read_text() if settings.public_key_file else None)
    if configured is not None and _der(configured, "the configured key") != _der(public.read_text(), str(public)):
        raise SettingsError(
            f"HTTP_AUTH_PUBLIC_KEY(_FILE) is not the development key {public}: the services would refuse its tokens"
        )
    token = issue_dev_token(
        organizations,
        ttl_s=ttl,
        issuer=settings.issuer or DEV_ISSUER,
        audience=settings.audience or DEV_AUDIENCE,
        subject=subject,
    )
    typer.echo(token)
