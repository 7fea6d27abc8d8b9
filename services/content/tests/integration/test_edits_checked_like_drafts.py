"""Content's side of manual mode on the real database: a manual draft's approval deadline is its
drafting time plus the schedule's TTL; a reviewer's edit is answered (accepted, or refused with
its reason), an approval without texts is left to the publisher, and an edit of a pending post
the organization does not have is dead-lettered."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def manual_draft(h: Any, tenant_of: Any, texts: Any, **schedule: Any) -> tuple[Any, dict[str, Any]]:
    t = await tenant_of(h, generation_mode="manual", **schedule).create()
    await t.material(texts.a)
    return t, h.drafted(await t.run(platforms=["BLUESKY", "MASTODON"]))


async def answers(h: Any, pending_post_id: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in ("PendingPostEditAccepted", "PendingPostEditRefused"):
        found += [(name, e) for e in await h.events(name) if e["data"]["pending_post_id"] == pending_post_id]
    return found


async def test_a_manual_draft_is_due_for_a_decision_its_ttl_after_it_was_drafted(
    h: Any, tenant_of: Any, texts: Any
) -> None:
    _, draft = await manual_draft(h, tenant_of, texts, approval_ttl_minutes=90)
    data = draft["data"]
    assert data["requires_approval"] is True
    waited = datetime.fromisoformat(data["approval_deadline"]) - datetime.fromisoformat(draft["time"])
    assert abs(waited - timedelta(minutes=90)) < timedelta(seconds=5)

    auto = await tenant_of(h).create()
    await auto.material(texts.b)
    assert h.drafted(await auto.run())["data"].get("approval_deadline") is None


async def test_an_edit_is_accepted_or_refused_with_its_reason_and_a_plain_approval_is_not_answered(
    h: Any, tenant_of: Any, texts: Any
) -> None:
    t, draft = await manual_draft(h, tenant_of, texts)
    pending = draft["data"]["pending_post_id"]

    assert await h.send(t.event("PendingPostApproved", pending_post_id=pending)) == "handled"
    assert await answers(h, pending) == []

    own = {"BLUESKY": draft["data"]["texts"]["BLUESKY"]}  # the draft's own text is no duplicate of itself
    good = t.event("PendingPostApproved", pending_post_id=pending, texts=own)
    assert await h.send(good) == "handled"
    too_long = t.event("PendingPostApproved", pending_post_id=pending, texts={"MASTODON": "word " * 120})
    assert await h.send(too_long) == "handled"
    elsewhere = t.event("PendingPostApproved", pending_post_id=pending, texts={"TWITTER": "Hello"})
    assert await h.send(elsewhere) == "handled"

    [(kind, accepted), *refusals] = await answers(h, pending)
    assert kind == "PendingPostEditAccepted" and accepted["_topic"] == "t.content.events"
    assert (accepted["data"]["approval_id"], accepted["data"]["texts"]) == (str(good.id), own)
    assert accepted["data"]["run_id"] == draft["data"]["run_id"]
    assert [(r["data"]["approval_id"], r["data"]["reason"], r["data"]["platform"]) for _, r in refusals] == [
        (str(too_long.id), "TEXT_BREAKS_RULE", "MASTODON"),
        (str(elsewhere.id), "NOT_A_PLATFORM_OF_THE_POST", "TWITTER"),
    ]
    assert "word" not in refusals[0][1]["data"]["detail"]


async def test_an_edit_of_a_pending_post_the_organization_does_not_have_is_dead_lettered(
    h: Any, tenant_of: Any, texts: Any
) -> None:
    _, draft = await manual_draft(h, tenant_of, texts)
    other = await tenant_of(h).create()
    theirs = other.event(
        "PendingPostApproved", pending_post_id=draft["data"]["pending_post_id"], texts={"BLUESKY": "x"}
    )
    unknown = other.event("PendingPostApproved", pending_post_id=str(uuid.uuid4()), texts={"BLUESKY": "x"})
    assert await h.send(theirs) == "dead_lettered"
    assert await h.send(unknown) == "dead_lettered"
    errors = [str(d["error"]) for d in await h.dead_letters()][-2:]
    assert "belongs to another organization" in errors[0] and "unknown pending post" in errors[1]
    assert await answers(h, draft["data"]["pending_post_id"]) == []
