"""`hopcast auth dev-token`: a bearer token for the local services' HTTP reads, signed with the
development key pair in the state folder (created on first use), naming the organizations given.

Refused with HOPCAST_ENV=production, and when the services are configured to trust another key:
such a token would only be refused by them.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from hopcast_shared.auth import DEV_AUDIENCE, DEV_ISSUER, dev_key_files, issue_dev_token
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
    if settings.jwks_url is not None or settings.public_key is not None:
        raise SettingsError("HTTP_AUTH_JWKS_URL or HTTP_AUTH_PUBLIC_KEY is set: the services would refuse a dev token")
    public = dev_key_files()[1]
    if settings.public_key_file is not None and settings.public_key_file.resolve() != public.resolve():
        raise SettingsError(f"HTTP_AUTH_PUBLIC_KEY_FILE={settings.public_key_file} is not the development key {public}")
    token = issue_dev_token(
        organizations,
        ttl_s=ttl,
        issuer=settings.issuer or DEV_ISSUER,
        audience=settings.audience or DEV_AUDIENCE,
        subject=subject,
    )
    typer.echo(token)
