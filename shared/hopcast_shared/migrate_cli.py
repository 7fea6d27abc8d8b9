"""`hopcast migrate apply|status SERVICE`: a service's database migrations as a step of their own.

Where a deployment runs them apart from the serving processes (the Kubernetes init container,
with the schema owner's `<SERVICE>_MIGRATIONS_DATABASE_URL` mounted only there), `apply` brings
the database to the code's schema under the migrations' advisory lock (replicas may run it
together) and the service, started with `<SERVICE>_MIGRATE_ON_START=false`, applies nothing
and waits for that schema. The migrations of a service are those its package ships (the
`hopcast.services` entry point names the package), with the kernel's and the tenant
projection's around them, as at a service's start.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from hopcast_shared.db import all_migrations, migrate_database
from hopcast_shared.listing import print_json_lines
from hopcast_shared.migrations import Migration, load_migrations, missing_migrations
from hopcast_shared.settings import SERVICES, ServiceSettings

app = typer.Typer(no_args_is_help=True, help="Apply or inspect a service's database migrations.")


def _service(name: str) -> str:
    if name not in SERVICES:
        raise typer.BadParameter(f"expected one of {', '.join(SERVICES)}")
    return name


ServiceArg = Annotated[str, typer.Argument(help=f"one of {', '.join(SERVICES)}", callback=_service)]


def package_migrations(service: str) -> list[Migration]:
    """The migrations the installed `service` package ships."""
    found = {ep.name: ep.value for ep in entry_points(group="hopcast.services")}
    if service not in found:
        raise typer.BadParameter(f"{service} is not installed here", param_hint="SERVICE")
    return load_migrations(service, Path(str(resources.files(found[service]) / "migrations")))


def service_migrations(service: str) -> list[Migration]:
    """Every migration of `service`'s database, in the order they apply."""
    return all_migrations(package_migrations(service))


@app.command()
def apply(service: ServiceArg) -> None:
    """Apply what the database lacks (as <SERVICE>_MIGRATIONS_DATABASE_URL, else <SERVICE>_DATABASE_URL)."""
    settings = ServiceSettings.for_service(service)
    migrations = service_migrations(service)
    applied = asyncio.run(migrate_database(settings.migrations_database_url or settings.database_url, migrations))
    for mig in applied:
        typer.echo(f"{service}: applied {mig.component} {mig.version:04d}_{mig.name}")
    typer.echo(f"{service}: the schema is current ({len(migrations)} migrations, {len(applied)} applied now)")


@app.command()
def status(
    service: ServiceArg,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON migration a line, applied or not")] = False,
) -> None:
    """Say which migrations the database lacks; exit 1 when any (for a readiness script)."""
    settings = ServiceSettings.for_service(service)
    migrations = service_migrations(service)

    async def missing() -> list[Migration]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await missing_migrations(conn, migrations)
        finally:
            await conn.close()

    lacking = asyncio.run(missing())
    if as_json:
        print_json_lines(
            {"component": m.component, "version": m.version, "name": m.name, "applied": m not in lacking}
            for m in migrations
        )
        if lacking:
            raise typer.Exit(1)
        return
    for mig in lacking:
        typer.echo(f"{service}: missing {mig.component} {mig.version:04d}_{mig.name}")
    typer.echo(f"{service}: {len(migrations) - len(lacking)} of {len(migrations)} migrations applied")
    if lacking:
        raise typer.Exit(1)
