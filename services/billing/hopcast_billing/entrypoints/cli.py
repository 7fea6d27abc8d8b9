"""`hopcast billing verify`: check that every balance equals the sum of its ledger, and show
each organization's buckets, subscription and last ledger row (a table, or `--json`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import typer

from hopcast_billing.adapters.reads import ledger_overview
from hopcast_shared.settings import ServiceSettings

app = typer.Typer(no_args_is_help=True, help="Billing's tools.")


@app.callback()
def billing() -> None:
    """Billing's tools."""


async def _overview(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return await ledger_overview(conn)
    finally:
        await conn.close()


def _status(row: dict[str, Any]) -> str:
    """OK when both buckets equal their sums in the ledger and neither is negative."""
    if row["period_credits"] < 0 or row["topup_credits"] < 0:
        return "NEGATIVE"
    same = (row["period_credits"], row["topup_credits"]) == (row["ledger_period"], row["ledger_topup"])
    return "OK" if same else "MISMATCH"


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "organization_id": str(row["organization_id"]),
        "status": _status(row),
        "balance": {"period": row["period_credits"], "topup": row["topup_credits"]},
        "ledger": {"period": row["ledger_period"], "topup": row["ledger_topup"], "entries": row["entries"]},
        "subscription_id": text(row["subscription_id"]),
        "plan": row["plan"],
        "last_entry": None
        if row["last_at"] is None
        else {
            "description": row["last_description"],
            "subscription_id": text(row["last_subscription_id"]),
            "created_at": row["last_at"].isoformat(),
        },
    }


_COLUMNS = ("organization", "status", "period", "top-up", "ledger", "entries", "subscription", "last entry")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    cells = [
        (
            j["organization_id"],
            j["status"],
            str(j["balance"]["period"]),
            str(j["balance"]["topup"]),
            f"{j['ledger']['period']}+{j['ledger']['topup']}",
            str(j["ledger"]["entries"]),
            f"{j['plan']} {j['subscription_id']}" if j["subscription_id"] else "-",
            j["last_entry"]["description"] if j["last_entry"] else "-",
        )
        for j in rows
    ]
    widths = [max(len(c[i]) for c in [_COLUMNS, *cells]) for i in range(len(_COLUMNS))]
    return ["  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in [_COLUMNS, *cells]]


@app.command()
def verify(
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of the table."),
) -> None:
    """Exit 0 when every organization's balance equals the sum of its ledger and is not negative."""
    settings = ServiceSettings.for_service("billing")
    rows = [_as_json(r) for r in asyncio.run(_overview(settings.database_url))]
    bad = [r for r in rows if r["status"] != "OK"]
    if as_json:
        typer.echo(json.dumps({"organizations_checked": len(rows), "mismatches": len(bad), "organizations": rows}))
    else:
        for line in _table(rows):
            typer.echo(line)
        for r in bad:
            typer.echo(
                f"MISMATCH {r['organization_id']}: balance period={r['balance']['period']} "
                f"topup={r['balance']['topup']}, ledger period={r['ledger']['period']} topup={r['ledger']['topup']}"
            )
        typer.echo(f"{len(rows)} organization(s) checked, {len(bad)} mismatch(es)")
    raise typer.Exit(1 if bad else 0)
