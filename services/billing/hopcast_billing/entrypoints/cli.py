"""`hopcast billing verify`: check that every balance equals the sum of its ledger."""

from __future__ import annotations

import asyncio

import asyncpg
import typer

from hopcast_billing.adapters.ledger import verify_all
from hopcast_billing.adapters.reads import organizations_with_balance
from hopcast_shared.settings import ServiceSettings

app = typer.Typer(no_args_is_help=True, help="Billing's tools.")


@app.callback()
def billing() -> None:
    """Billing's tools."""


async def _verify(url: str) -> tuple[int, list[asyncpg.Record]]:
    conn = await asyncpg.connect(url)
    try:
        organizations = await organizations_with_balance(conn)
        return organizations, await verify_all(conn)
    finally:
        await conn.close()


@app.command()
def verify() -> None:
    """Exit 0 when every organization's balance equals the sum of its ledger and is not negative."""
    settings = ServiceSettings.for_service("billing")
    organizations, bad = asyncio.run(_verify(settings.database_url))
    for row in bad:
        typer.echo(
            f"MISMATCH {row['organization_id']}: balance period={row['period_credits']} "
            f"topup={row['topup_credits']}, ledger period={row['ledger_period']} topup={row['ledger_topup']}"
        )
    typer.echo(f"{organizations} organization(s) checked, {len(bad)} mismatch(es)")
    raise typer.Exit(1 if bad else 0)
