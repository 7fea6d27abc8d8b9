"""`hopcast tokens encrypt` (plaintext on stdin, ciphertext on stdout) and `hopcast tokens new-key`.

There is deliberately no command that prints a plaintext.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hopcast_shared.crypto import TRANSPORT_AAD, load_keyring, owner_aad

app = typer.Typer(no_args_is_help=True, help="Token encryption.")


@app.command()
def encrypt(
    owner: Annotated[
        str | None,
        typer.Option(help="bind to an owner, KIND:ID (default: the transport binding upstream events use)"),
    ] = None,
) -> None:
    """Read a token on stdin; print its ciphertext under the active key."""
    data = sys.stdin.read()
    token = data[:-1] if data.endswith("\n") else data
    if not token:
        raise typer.BadParameter("no token on stdin")
    if owner is None:
        aad = TRANSPORT_AAD
    else:
        kind, sep, owner_id = owner.partition(":")
        if not sep or not kind or not owner_id:
            raise typer.BadParameter("expected KIND:ID, e.g. social_account:<uuid>", param_hint="--owner")
        aad = owner_aad(kind, owner_id)
    typer.echo(load_keyring().encrypt(token, associated_data=aad))


@app.command("new-key")
def new_key() -> None:
    """Print a TOKEN_KEYS entry for a new key (the next id): append it, then rotate."""
    typer.echo(load_keyring().new_key_entry())
