"""A consumer batch of ScheduleDue events decides exactly as one by one would, in one transaction
and a few statements, on the real database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from hopcast_content.adapters.embedders import make_embedder
from hopcast_content.config import ContentSettings
from hopcast_shared.db import Database
from hopcast_shared.testing import CountingDatabase, as_record

pytestmark = pytest.mark.integration


class CountingEmbedder:
    """The default embedder, with the texts of each call."""

    def __init__(self) -> None:
        self.inner = make_embedder(ContentSettings())
        self.name, self.dim = self.inner.name, self.inner.dim
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return await self.inner.embed(texts)


class Script:
    """Stands in for a Harness while a world is written down: keeps the events, to replay them."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, str]] = []

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        self.events.append((event, topic))
        return "handled"


async def batch_world(tenant_of: Any, texts: Any) -> tuple[Script, list[Any], dict[str, str]]:
    """Organizations, brands and materials (replayed one by one), then ScheduleDue events that
    mix in one batch: runs of the same brand, two brands of one organization, a pillar-balanced
    brand, a deleted organization, a deleted brand, another organization's brand, the same run
    twice (the same event, and the same run in a new envelope). Returns the runs' names too."""
    script = Script()
    h: Any = script
    a = await tenant_of(h).create()
    await a.material(texts.a)
    await a.material(texts.b)
    await a.material("  " + texts.a.upper() + " ")  # the same text as the first, differently typed
    a2 = tenant_of(h)  # a second brand of a's organization
    a2.org = a.org
    assert await h.send(a2.event("BrandProfileCreated", brand_profile_id=a2.brand)) == "handled"
    values = {"schedule_id": a2.schedule_id, "brand_profile_id": a2.brand}
    assert await h.send(a2.event("ScheduleCreated", **values)) == "handled"
    await a2.material(texts.c)
    b = await tenant_of(h, material_strategy="pillar_balanced").create()
    await b.material(texts.b, content_pillar="brewing tips")
    await b.material("Water at 94 degrees extracts sweetness without bitterness.", content_pillar="brewing tips")
    await b.material(texts.a, content_pillar="behind the scenes")
    await b.material(texts.c, content_pillar="offers")
    one = await tenant_of(h).create()  # one material for two runs
    await one.material(texts.c, max_uses=None)
    gone = await tenant_of(h).create()
    await gone.material(texts.a)
    assert await h.send(gone.event("OrganizationDeleted")) == "handled"
    unbranded = await tenant_of(h).create()
    await unbranded.material(texts.b)
    assert await h.send(unbranded.event("BrandProfileDeleted", brand_profile_id=unbranded.brand)) == "handled"

    runs = {
        "a1": a.due(),
        "b1": b.due(),
        "one1": one.due(),
        "a2": a.due(),
        "gone": gone.due(),
        "a_other_brand": a2.due(),
        "b2": b.due(),
        "unbranded": unbranded.due(),
        "stolen_brand": unbranded.due(brand_profile_id=a.brand),
        "one2": one.due(),
        "a3": a.due(),
    }
    a1_again = a.due(run_id=str(runs["a1"].data["run_id"]))  # the same run, a new envelope
    dues = [*runs.values()]
    dues[3:3] = [runs["b1"]]  # the same event delivered twice
    dues.append(a1_again)
    return script, dues, {str(e.data["run_id"]): name for name, e in runs.items()}


async def run_results(db: Database, names: dict[str, str]) -> dict[str, Any]:
    """Per run: its result, the material drafted, and the events emitted (volatile fields left
    out, the draft's similarity kept apart: see `similarities`)."""
    results: dict[str, Any] = {}
    for row in await db.pool.fetch("SELECT run_id, result FROM runs"):
        results[names[str(row["run_id"])]] = {"result": row["result"], "material": None, "events": []}
    for row in await db.pool.fetch("SELECT run_id, material_id FROM pending_posts"):
        results[names[str(row["run_id"])]]["material"] = str(row["material_id"])
    for row in await db.pool.fetch("SELECT event_type, topic, payload FROM outbox ORDER BY id"):
        data = json.loads(row["payload"])["data"]
        if "run_id" in data:
            kept = {k: v for k, v in data.items() if k not in ("pending_post_id", "completed_at")}
            if "max_similarity" in kept:
                results[names[data["run_id"]]]["similarity"] = kept.pop("max_similarity")
            results[names[data["run_id"]]]["events"].append((row["event_type"], row["topic"], kept))
    return results


def similarities(results: dict[str, Any]) -> dict[str, float]:
    """Each drafted run's similarity, taken out of its results: a text embedded among the
    others of a batch gets a vector within bf16's precision of the one it gets alone, so these
    are compared to within 0.005 and the rest exactly."""
    return {name: r.pop("similarity") for name, r in results.items() if "similarity" in r}


async def test_a_batch_of_runs_decides_as_one_by_one_would_in_a_few_statements(
    database_url: str, stack: Any, harness_on: Any, open_db: Any, tenant_of: Any, texts: Any
) -> None:
    script, dues, names = await batch_world(tenant_of, texts)
    sequential_db = CountingDatabase(await open_db(await stack.new_database("content_one_by_one")))
    batched_db = CountingDatabase(await open_db(database_url))
    try:
        for db in (sequential_db, batched_db):
            h = harness_on(db, consumer_lanes=1)
            for event, topic in script.events:
                assert await h.send(event, topic) == "handled"
        each, ahead = CountingEmbedder(), CountingEmbedder()
        sequential_db.transactions = []
        sequential = [await harness_on(sequential_db, embedder=each).send(e, "scheduler.events") for e in dues]
        batched_db.transactions = []
        batched = await harness_on(batched_db, consumer_lanes=1, embedder=ahead).consumer.handle_batch(
            [as_record(e, topic="scheduler.events") for e in dues]
        )
        assert batched == sequential == ["handled"] * 3 + ["duplicate"] + ["handled"] * 9
        assert len(batched_db.statements) == 1, "the batch is one transaction"
        expected, got = await run_results(sequential_db, names), await run_results(batched_db, names)
        assert similarities(got) == pytest.approx(similarities(expected), abs=0.005)
        assert got == expected
    finally:
        await sequential_db.close()
        await batched_db.close()

    # What sequential handling decides (so the comparison compares something worth having).
    result = {name: r["result"] for name, r in expected.items()}
    assert result == {
        "a1": "DRAFTED",
        "a2": "DRAFTED",
        "a3": "ALL_CANDIDATES_DUPLICATE",  # only the copy of a1's text is left
        "a_other_brand": "DRAFTED",
        "b1": "DRAFTED",
        "b2": "DRAFTED",
        "one1": "DRAFTED",
        "one2": "NO_READY_MATERIAL",  # its only material is in flight
        "gone": "ORGANIZATION_INACTIVE",
        "unbranded": "BRAND_INACTIVE",
        "stolen_brand": "BRAND_INACTIVE",
    }
    assert expected["a1"]["material"] != expected["a2"]["material"]
    assert expected["b1"]["material"] != expected["b2"]["material"]
    assert [e[0] for e in expected["a3"]["events"]] == ["ScheduleRunSkipped", "ScheduleRunCompleted"]
    assert [e[0] for e in expected["a1"]["events"]] == ["PendingPostCreated"]  # once, for two deliveries
    # The batch's statements: 12 for all the runs (inbox, start, lock, organizations, brands,
    # candidates, schedules, pillar counts, angle stats, the first candidates' materials,
    # results, outbox), 4 for each candidate tried (the duplicate check's), 2 to write the
    # drafts before a check of the same organization (3 times here); one by one, every run
    # pays for all of it.
    [statements] = batched_db.statements
    tried = 7  # a1, a2, a3, a_other_brand, b1, b2, one1
    assert statements <= 12 + 4 * tried + 2 * 3, statements
    assert statements * 2 < sum(sequential_db.statements), (statements, sequential_db.statements)
    # The drafts of the runs' first candidates (every one tried here) are embedded in one call,
    # written before the runs are handled (a text drafted twice, once); one by one, each alone.
    assert [len(texts) for texts in each.calls] == [1] * tried
    [texts] = ahead.calls
    assert sorted(texts) == sorted({text for [text] in each.calls})


async def test_a_run_whose_draft_ahead_was_the_wrong_guess_drafts_its_own(
    database_url: str, harness_on: Any, open_db: Any, tenant_of: Any, texts: Any
) -> None:
    """Drafts written ahead are guesses: here the first run's first candidate is a copy of a
    draft in the window, so it takes its second, the one guessed for the second run, which then
    plans again. Both decide as one by one would (round robin: the oldest material first)."""
    db = await open_db(database_url)
    try:
        embedder = CountingEmbedder()
        h = harness_on(db, consumer_lanes=1, embedder=embedder)
        t = await tenant_of(h).create()
        await t.material(texts.a)
        assert (await t.run())["PendingPostCreated"]  # its draft stays in the window, in flight
        copy, b, c = [await t.material(text) for text in (texts.a, texts.b, texts.c)]
        first, second = t.due(), t.due()
        embedder.calls = []
        outcomes = await h.consumer.handle_batch([as_record(e, topic="scheduler.events") for e in (first, second)])
        assert outcomes == ["handled", "handled"]
        rows = await db.pool.fetch(
            "SELECT run_id, material_id FROM pending_posts WHERE material_id = ANY($1::uuid[])", [copy, b, c]
        )
        drafted = {str(r["run_id"]): str(r["material_id"]) for r in rows}
        # One by one: the first run finds `copy` a copy (its material's hash is in the window)
        # and drafts b; the second finds b in flight, `copy` a copy again, and drafts c.
        assert drafted == {str(first.data["run_id"]): b, str(second.data["run_id"]): c}
        # Ahead, the guesses were `copy` for the first run and b for the second, in one call.
        assert len(embedder.calls[0]) == 2
        results = await db.pool.fetch(
            "SELECT result FROM runs WHERE run_id = ANY($1::uuid[])", [first.data["run_id"], second.data["run_id"]]
        )
        assert sorted(r["result"] for r in results) == ["DRAFTED", "DRAFTED"]
    finally:
        await db.close()
