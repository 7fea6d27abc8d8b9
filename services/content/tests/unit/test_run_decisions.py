"""What a run decides, on content in memory: a post drafted from a ready material, or the run
skipped with its reason and ended; once per run whatever the deliveries; another
organization's run refused. Given these events, expect those events."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_content.service_layer.materials import material_submitted
from hopcast_content.service_layer.outcomes import run_completed
from hopcast_content.service_layer.projections import schedule_upserted
from hopcast_content.service_layer.runs import schedule_due
from hopcast_shared.handling import PermanentError
from hopcast_shared.tenants import brand_upserted

TEXT = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
OTHER = "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference."


class Tenant:
    """One organization with one brand and one schedule, in content in memory."""

    def __init__(self, content: Any) -> None:
        self.content = content
        self.org, self.brand, self.schedule = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def create(self, **schedule: Any) -> Tenant:
        deps, ctx = self.content.deps, self.content.ctx
        await brand_upserted(deps, *ctx("BrandProfileCreated", self.org, brand_profile_id=str(self.brand)))
        ids = {"schedule_id": str(self.schedule), "brand_profile_id": str(self.brand)}
        await schedule_upserted(deps, *ctx("ScheduleCreated", self.org, **ids | schedule))
        return self

    async def material(self, body: str, **values: Any) -> uuid.UUID:
        material_id = uuid.uuid4()
        values = {"material_id": str(material_id), "brand_profile_id": str(self.brand), "title": None} | values
        await material_submitted(
            self.content.deps, *self.content.ctx("MaterialSubmitted", self.org, body=body, **values)
        )
        return material_id

    def due(self, run_id: uuid.UUID | None = None, **changes: Any) -> tuple[Any, Any]:
        run_id = run_id or uuid.uuid4()
        values = {
            "run_id": str(run_id),
            "schedule_id": str(self.schedule),
            "brand_profile_id": str(self.brand),
            "due_at": "2027-03-14T09:00:00Z",
            "platforms": ["TWITTER", "LINKEDIN"],
            "target_pillar": None,
        } | changes
        return self.content.ctx("ScheduleDue", self.org, correlation_id=str(run_id), **values)

    async def run(self, *dues: tuple[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Handle these ScheduleDue as one batch (one run by default); returns what they emitted."""
        dues = dues or (self.due(),)
        await schedule_due(self.content.deps, list(dues))
        return self.content.emitted(*(ctx for ctx, _ in dues))


def skipped(events: list[tuple[str, dict[str, Any]]], reason: str, outcome: str) -> None:
    assert [(t, d.get("reason") or d.get("outcome")) for t, d in events] == [
        ("ScheduleRunSkipped", reason),
        ("ScheduleRunCompleted", outcome),
    ]


async def test_a_run_drafts_from_a_ready_material_and_holds_it_until_the_run_ends(content: Any) -> None:
    t = await Tenant(content).create(generation_mode="manual")
    material_id = await t.material(TEXT, max_uses=None)
    [(event_type, post)] = await t.run()
    assert event_type == "PendingPostCreated"
    assert post["material_id"] == str(material_id) and post["requires_approval"] is True
    assert "less than a week old" in post["content"] and post["platforms"] == ["TWITTER", "LINKEDIN"]
    [draft] = content.world.pending_posts
    assert draft["id"] == uuid.UUID(post["pending_post_id"]) and content.world.results == {draft["run_id"]: "DRAFTED"}
    assert sorted(e.kind for e in content.world.embeddings) == ["MATERIAL", "PENDING_POST"]
    # Its only material is in flight: the next run has nothing to draft from.
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    # Rejected, the run ends: the material may be picked again, and the draft is forgotten.
    ended = {"run_id": post["run_id"], "schedule_id": str(t.schedule), "brand_profile_id": str(t.brand)}
    await run_completed(content.deps, *content.ctx("ScheduleRunCompleted", t.org, outcome="REJECTED", **ended))
    assert [e.kind for e in content.world.embeddings] == ["MATERIAL"]
    [(event_type, again)] = await t.run()
    assert event_type == "PendingPostCreated" and again["material_id"] == str(material_id)


async def test_one_schedule_due_drafts_once_however_often_it_comes(content: Any) -> None:
    t = await Tenant(content).create()
    await t.material(TEXT)
    await t.material(OTHER)
    run_id = uuid.uuid4()
    # Twice in one batch, then again in a new envelope: one draft.
    events = await t.run(t.due(run_id), t.due(run_id))
    assert [e for e, _ in events] == ["PendingPostCreated"]
    assert await t.run(t.due(run_id)) == []
    assert len(content.world.pending_posts) == 1


async def test_a_copy_of_a_drafted_material_is_skipped_as_a_duplicate(content: Any) -> None:
    t = await Tenant(content).create()
    first = await t.material(TEXT)
    await t.material("  " + TEXT.upper() + " ")  # the same text, differently typed
    # In one batch: the second run's check sees the first run's draft.
    events = await t.run(t.due(), t.due())
    assert [e for e, _ in events] == ["PendingPostCreated", "ScheduleRunSkipped", "ScheduleRunCompleted"]
    assert events[0][1]["material_id"] == str(first)
    skipped(events[1:], "ALL_CANDIDATES_DUPLICATE", "SKIPPED_DUPLICATE")
    # Another organization with the same text still gets its draft: never across organizations.
    other = await Tenant(content).create()
    await other.material(TEXT)
    assert [e for e, _ in await other.run()] == ["PendingPostCreated"]


async def test_runs_of_an_inactive_brand_or_organization_are_skipped(content: Any) -> None:
    t = await Tenant(content).create()
    await t.material(TEXT)
    skipped(await t.run(t.due(brand_profile_id=str(uuid.uuid4()))), "BRAND_INACTIVE", "BRAND_INACTIVE")
    other = await Tenant(content).create()
    await other.material(OTHER)
    skipped(await t.run(t.due(brand_profile_id=str(other.brand))), "BRAND_INACTIVE", "BRAND_INACTIVE")
    content.world.deleted_organizations.add(t.org)
    skipped(await t.run(), "ORGANIZATION_INACTIVE", "ORGANIZATION_INACTIVE")
    assert content.world.pending_posts == []


async def test_a_run_named_again_by_another_organization_is_refused(content: Any) -> None:
    owner, other = await Tenant(content).create(), await Tenant(content).create()
    await owner.material(TEXT)
    run_id = uuid.uuid4()
    with pytest.raises(PermanentError, match=f"run {run_id} belongs to another organization"):
        await schedule_due(content.deps, [owner.due(run_id), other.due(run_id)])
    await owner.run(owner.due(run_id))
    with pytest.raises(PermanentError, match=f"run {run_id} belongs to another organization"):
        await other.run(other.due(run_id))
