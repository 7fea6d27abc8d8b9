"""A reviewer's edit and an approval deadline in a run's timeline (issues 19 points 1 to 3 met):
an approval that carries an edit decides nothing until content accepts it, so the run's
deadline stays stopped while the draft waits; a refused edit and an expiry are stages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_shared.db import Database
from hopcast_shared.topics import CONTENT, PUBLISHER

pytestmark = pytest.mark.integration


async def _run(db: Database, run_id: str) -> Any:
    return await db.pool.fetchrow("SELECT * FROM schedule_runs WHERE run_id = $1", uuid.UUID(run_id))


async def _stages(db: Database, run_id: str) -> list[tuple[str, str | None, str | None]]:
    rows = await db.pool.fetch(
        "SELECT stage, platform, detail FROM run_stages WHERE run_id = $1 ORDER BY at, stage", uuid.UUID(run_id)
    )
    return [(r["stage"], r["platform"], r["detail"]) for r in rows]


async def _drafted_for_review(t: Any, db: Database) -> tuple[str, str]:
    run_id = await t.trigger(db)
    pending_post_id = str(uuid.uuid4())
    draft = t.event(
        "PendingPostCreated",
        run_id=run_id,
        pending_post_id=pending_post_id,
        schedule_id=t.schedule_id,
        brand_profile_id=t.brand,
        requires_approval=True,
        time=datetime.now(UTC),
    )
    assert await t.send(draft, CONTENT) == "handled"
    assert (await _run(db, run_id))["approval_wait_since"] is not None
    return run_id, pending_post_id


async def test_an_edit_keeps_the_clock_stopped_until_content_accepts_it(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any]
) -> None:
    t = await scheduler_tenant().create()
    run_id, pending_post_id = await _drafted_for_review(t, scheduler_db)
    edit = t.event("PendingPostApproved", pending_post_id=pending_post_id, texts={"BLUESKY": "x" * 400})
    assert await t.send(edit) == "handled"
    assert (await _run(scheduler_db, run_id))["approval_wait_since"] is not None

    approval_id = str(edit.id)
    refused = t.event(
        "PendingPostEditRefused",
        pending_post_id=pending_post_id,
        run_id=run_id,
        approval_id=approval_id,
        platform="BLUESKY",
        reason="TEXT_BREAKS_RULE",
    )
    assert await t.send(refused, CONTENT) == "handled"
    assert (await _run(scheduler_db, run_id))["approval_wait_since"] is not None

    accepted_at = datetime.now(UTC) + timedelta(minutes=5)
    accepted = t.event(
        "PendingPostEditAccepted",
        pending_post_id=pending_post_id,
        run_id=run_id,
        approval_id=approval_id,
        texts={"BLUESKY": "A shorter text"},
        time=accepted_at,
    )
    assert await t.send(accepted, CONTENT) == "handled"
    assert (await _run(scheduler_db, run_id))["approval_wait_since"] is None
    stages = await _stages(scheduler_db, run_id)
    assert ("PendingPostApproved", None, "an edit, for content to check") in stages
    assert ("PendingPostEditRefused", "BLUESKY", "TEXT_BREAKS_RULE") in stages
    assert ("PendingPostEditAccepted", None, None) in stages


async def test_an_edit_read_before_its_draft_is_no_decision(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any]
) -> None:
    t = await scheduler_tenant().create()
    run_id = await t.trigger(scheduler_db)
    pending_post_id = str(uuid.uuid4())
    edit = t.event("PendingPostApproved", pending_post_id=pending_post_id, texts={"BLUESKY": "Edited"})
    assert await t.send(edit) == "handled"
    draft = t.event(
        "PendingPostCreated",
        run_id=run_id,
        pending_post_id=pending_post_id,
        schedule_id=t.schedule_id,
        brand_profile_id=t.brand,
        requires_approval=True,
    )
    assert await t.send(draft, CONTENT) == "handled"
    assert (await _run(scheduler_db, run_id))["approval_wait_since"] is not None  # still waiting


async def test_an_expired_draft_is_a_stage_of_its_run(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any]
) -> None:
    t = await scheduler_tenant().create()
    run_id, pending_post_id = await _drafted_for_review(t, scheduler_db)
    expired = t.event("PendingPostExpired", pending_post_id=pending_post_id, run_id=run_id)
    assert await t.send(expired, PUBLISHER) == "handled"
    [(_stage, _, detail)] = [s for s in await _stages(scheduler_db, run_id) if s[0] == "PendingPostExpired"]
    assert detail is not None and detail.startswith("no decision by ")
