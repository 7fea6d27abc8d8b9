"""`hopcast tokens encrypt` (plaintext on stdin, ciphertext on stdout) and `hopcast tokens new-key`.

A token for an event is bound to its organization and social account
(`--organization ID --account ID`); there is no unbound form. There is deliberately no
command that prints a plaintext.
"""

from __future__ import annotations

import getpass
import sys
import uuid
from typing import Annotated

import typer

from hopcast_shared.crypto import account_transit_aad, load_keyring, new_key_entry, owner_aad
from hopcast_shared.settings import CryptoSettings, load

app = typer.Typer(no_args_is_help=True, help="Token encryption (no command ever prints a plaintext).")


def _read_token() -> str:
    if sys.stdin.isatty():
        # Typed at a terminal: read without echo, so the token stays off the screen and scrollback.
        return getpass.getpass("token (not echoed): ")
    data = sys.stdin.read()
    # Exactly one line ending comes from `echo` or a file; anything else belongs to the token.
    for ending in ("\r\n", "\n"):
        if data.endswith(ending):
            return data[: -len(ending)]
    return data


def _owner_aad(owner: str) -> bytes:
    kind, sep, owner_id = owner.partition(":")
    try:
        if not sep:
            raise ValueError("missing `:`")
        return owner_aad(kind, owner_id)
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected KIND:ID, e.g. social_account:<uuid> ({exc})", param_hint="--owner"
        ) from None


def _uuid(value: str | None, option: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter("expected a UUID", param_hint=option) from None


@app.command()
def encrypt(
    organization: Annotated[
        str | None, typer.Option(metavar="ID", help="the organization the social account belongs to")
    ] = None,
    account: Annotated[str | None, typer.Option(metavar="ID", help="the social account the token is for")] = None,
    owner: Annotated[
        str | None,
        typer.Option(metavar="KIND:ID", help="instead: bind to a stored owner, e.g. social_account:<uuid>"),
    ] = None,
) -> None:
    """Read a token on stdin; print its ciphertext under the active key, bound to its
    organization and social account (what SocialAccountConnected/Updated carry)."""
    organization_id, account_id = _uuid(organization, "--organization"), _uuid(account, "--account")
    if owner is not None:
        if organization_id is not None or account_id is not None:
            raise typer.BadParameter("give either --owner or --organization and --account", param_hint="--owner")
        aad = _owner_aad(owner)
    elif organization_id is None or account_id is None:
        raise typer.BadParameter(
            "a token in an event is bound to its owner: give --organization ID and --account ID",
            param_hint="--organization/--account",
        )
    else:
        aad = account_transit_aad(organization_id, account_id)
    token = _read_token()
    if not token:
        raise typer.BadParameter("no token on stdin")
    typer.echo(load_keyring().encrypt(token, associated_data=aad))


@app.command()
def rotate() -> None:
    """Re-encrypt every stored token under the newest key, in every installed part that stores
    tokens (entry-point group `hopcast.token_rotation`); safe while the services run."""
    from importlib.metadata import entry_points

    stores = sorted(entry_points(group="hopcast.token_rotation"), key=lambda e: e.name)
    if not stores:
        raise typer.BadParameter("no installed part stores tokens")
    worst = 0
    for store in stores:
        typer.echo(f"{store.name}:")
        try:
            store.load()()
        except typer.Exit as exit_:
            worst = max(worst, exit_.exit_code)
    raise typer.Exit(worst)


@app.command("new-key")
def new_key() -> None:
    """Print a TOKEN_KEYS entry for a new key (the next id): append it, then rotate."""
    settings = load(CryptoSettings)
    if settings.token_keys is None and settings.hopcast_env == "production":
        # The first production key: there is no keyring yet to take the next id from.
        typer.echo(new_key_entry(1))
        return
    typer.echo(load_keyring(settings).new_key_entry())
