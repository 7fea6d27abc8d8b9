"""The organization overview as the live view assembles it (issue 22): the four services'
answers put side by side, a part that does not answer 200 named, and the organizations table
showing the overview beside the figures read from the topics."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rich.console import Console

from hopcast_stack.overview import OverviewUnavailable, read_overview
from hopcast_stack.view import Board, OrganizationView, overview_text, render

ORG = str(uuid.uuid4())
ANSWERS: dict[str, dict[str, Any]] = {
    "scheduler": {"organization_id": ORG, "active_schedules": 3, "schedules_by_status": {"ACTIVE": 3, "ERROR": 1}},
    "content": {"organization_id": ORG, "active_brands": 2, "ready_materials": 7},
    "billing": {
        "organization_id": ORG,
        "credits_remaining": 950,
        "period_credits": 940,
        "topup_credits": 10,
        "period_end": "2027-02-01T00:00:00+00:00",
    },
    "publisher": {"organization_id": ORG, "days": 30, "posts": 5, "posts_by_platform": {"BLUESKY": 2, "X": 3}},
}


def answering(statuses: dict[str, int] | None = None) -> tuple[Any, list[tuple[str, str]]]:
    asked: list[tuple[str, str]] = []

    async def get(service: str, path: str) -> tuple[int, Any]:
        asked.append((service, path))
        status = (statuses or {}).get(service, 200)
        return status, ANSWERS[service] if status == 200 else {"error": "not found"}

    return get, asked


async def test_the_overview_is_the_four_parts_side_by_side() -> None:
    get, asked = answering()
    overview = await read_overview(get, ORG)
    assert sorted(asked) == sorted((s, f"/organizations/{ORG}/overview") for s in ANSWERS)
    assert overview.as_json() == {
        "organization_id": ORG,
        "active_brands": 2,
        "ready_materials": 7,
        "active_schedules": 3,
        "posts_last_30_days": 5,
        "credits_remaining": 950,
        "period_credits": 940,
        "topup_credits": 10,
        "period_end": "2027-02-01T00:00:00+00:00",
        "schedules_by_status": {"ACTIVE": 3, "ERROR": 1},
        "posts_by_platform": {"BLUESKY": 2, "X": 3},
    }


async def test_a_part_that_does_not_answer_is_named() -> None:
    get, _ = answering({"billing": 404})
    with pytest.raises(OverviewUnavailable, match="billing answered 404"):
        await read_overview(get, ORG)


async def test_the_organizations_table_shows_the_overview() -> None:
    board = Board()
    board.names[ORG] = "Northwind Roasters"
    board.organizations[ORG] = OrganizationView(ORG)
    console = Console(width=240, record=True)
    console.print(render(board, runs_limit=0, width=240))
    assert "Northwind Roasters" in console.export_text() and overview_text(None) == "-"
    get, _ = answering()
    board.overviews[ORG] = await read_overview(get, ORG)
    console = Console(width=240, record=True)
    console.print(render(board, runs_limit=0, width=240))
    assert "brands 2 · ready 7 · schedules 3 · posts/30d 5 · credits 940+10" in console.export_text()
