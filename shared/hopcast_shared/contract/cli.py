"""`hopcast contract ...`: export the JSON Schemas and the AsyncAPI documents, list the event types,
check an event file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hopcast_shared.contract.errors import ContractError
from hopcast_shared.contract.registry import EVENT_TYPES, parse_event
from hopcast_shared.contract.schema import export_schemas

app = typer.Typer(no_args_is_help=True, add_completion=False, help="The event contract (DESIGN.md).")


@app.callback()
def _contract() -> None:
    """The event contract: CloudEvents envelope, event types, topics, JSON Schemas."""


@app.command("export-schemas")
def export_schemas_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the schemas to, e.g. docs/schemas")],
) -> None:
    """Write the JSON Schema of the envelope and of each event type's data, plus index.json."""
    written = export_schemas(directory)
    typer.echo(f"wrote {len(written)} schema files to {directory}")


@app.command("export-asyncapi")
def export_asyncapi_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the documents to, e.g. docs/asyncapi")],
) -> None:
    """Write one AsyncAPI 3.0 document per installed service (what it consumes, handles and emits)."""
    from hopcast_shared.contract.asyncapi import export_asyncapi

    written = export_asyncapi(directory)
    typer.echo(f"wrote {len(written)} AsyncAPI documents to {directory}")


@app.command("types")
def list_types() -> None:
    """List the event types and the topics each is published to."""
    for spec in EVENT_TYPES.values():
        typer.echo(f"{spec.name}\t{','.join(spec.topics)}")


@app.command("check")
def check_event(
    path: Annotated[Path, typer.Argument(help="A file holding one event as CloudEvents JSON; - for stdin")],
) -> None:
    """Validate one event against the contract; exit 1 with the reasons when it is refused."""
    raw = typer.get_binary_stream("stdin").read() if str(path) == "-" else path.read_bytes()
    try:
        envelope, _ = parse_event(raw)
    except ContractError as exc:
        typer.echo(f"refused ({exc.kind}): {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {envelope.type} {envelope.id}")
