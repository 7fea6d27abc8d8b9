"""Materials over time, on the real database: those left uploaded are processed later (an
embedder outage fails them, or leaves a run unacknowledged, never dead-lettered), what was
deleted long ago is purged (the command too), and the HTTP read shows a brand's materials.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from typer.testing import CliRunner

from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.purge import purge
from hopcast_content.bootstrap import build_deps
from hopcast_content.config import ContentSettings
from hopcast_content.domain.embedding import EmbeddingError
from hopcast_content.domain.materials import MaterialStatus
from hopcast_content.entrypoints import cli
from hopcast_content.entrypoints.http import routes
from hopcast_content.service_layer.materials import process_material
from hopcast_shared.db import Database

pytestmark = pytest.mark.integration


class BrokenEmbedder(HashingEmbedder):
    async def embed(self, texts: Any) -> list[list[float]]:
        raise EmbeddingError("embeddings API: 503")


async def test_materials_left_uploaded_are_processed_later(db: Database, harness_on: Any, texts: Any) -> None:
    h = harness_on(db, ContentSettings(process_inline=False))
    t = await h.tenant()
    waiting = await t.material(texts.a)
    row = await db.pool.fetchrow("SELECT status FROM materials WHERE id = $1", uuid.UUID(waiting))
    assert row["status"] == "UPLOADED"
    h.skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")  # not READY yet
    broken = await t.material(texts.b)
    async with db.transaction() as conn:
        materials = Materials(conn)
        claimed = await materials.claim_waiting(10)
        assert [str(m.id) for m in claimed] == [waiting, broken]
        assert await process_material(h.deps, materials, claimed[0]) == MaterialStatus.READY
        failing = build_deps(ContentSettings(), embedder=BrokenEmbedder())
        assert await process_material(failing, materials, claimed[1]) == MaterialStatus.FAILED
    row = await db.pool.fetchrow("SELECT status, failure_reason FROM materials WHERE id = $1", uuid.UUID(broken))
    assert row["status"] == "FAILED" and "503" in row["failure_reason"]
    assert h.drafted(await t.run())["data"]["material_id"] == waiting


async def test_an_embedder_outage_while_drafting_is_not_dead_lettered(
    db: Database, harness_on: Any, texts: Any
) -> None:
    h = harness_on(db)
    t = await h.tenant()
    await t.material(texts.a)
    down = harness_on(db, ContentSettings(), embedder=BrokenEmbedder())
    event = t.due()
    with pytest.raises(ConnectionError):  # left unacknowledged: Kafka delivers it again
        await down.send(event, "scheduler.events")
    assert await h.dead_letters() == [] and await db.pool.fetchval("SELECT count(*) FROM runs") == 0
    assert await h.send(event, "scheduler.events") == "handled"  # the embedder is back
    assert h.drafted(await t.outcome(event.data["run_id"]))


def test_purge_command(database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTENT_DATABASE_URL", database_url)
    result = CliRunner().invoke(cli.app, ["purge", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["materials"] == 0


async def test_purge_deletes_what_was_deleted_long_ago(h: Any, texts: Any) -> None:
    t = await h.tenant()
    old = await t.material(texts.a)
    recent = await t.material(texts.b)
    keep = await t.material(texts.c)
    for material_id in (old, recent):
        assert await h.send(t.event("MaterialDeleted", material_id=material_id)) == "handled"
    await h.db.pool.execute(
        "UPDATE materials SET deleted_at = now() - interval '31 days' WHERE id = $1", uuid.UUID(old)
    )
    gone = await h.tenant()
    await gone.material(texts.a)
    assert await h.send(gone.event("OrganizationDeleted")) == "handled"
    await h.db.pool.execute(
        "UPDATE organizations SET deleted_at = now() - interval '40 days' WHERE id = $1", uuid.UUID(gone.org)
    )
    # A live organization's brand deleted long ago: its materials go, with their embeddings.
    of_brand = await h.tenant()
    await of_brand.material(texts.b)
    await h.db.pool.execute(
        "UPDATE brands SET deleted_at = now() - interval '40 days' WHERE id = $1", uuid.UUID(of_brand.brand)
    )
    async with h.db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts["materials"] == 3 and counts["organizations"] == 1 and counts["brands"] == 2
    left = {str(r["id"]) for r in await h.db.pool.fetch("SELECT id FROM materials")}
    assert left == {recent, keep}
    assert await h.db.pool.fetchval("SELECT count(*) FROM content_embeddings") == 2
    assert await h.db.pool.fetchval("SELECT count(*) FROM organizations WHERE id = $1", uuid.UUID(gone.org)) == 0


async def test_http_brand_materials(h: Any, texts: Any) -> None:
    t = await h.tenant()
    a = await t.material(texts.a, title="Tuesdays")
    b = await t.material(texts.b)
    await t.material("", type="TEXT", media_urls=["https://cdn.example/x.png"])
    h.drafted(await t.run())

    class Runtime:
        db = h.db

    route = routes(Runtime(), h.settings)[0]  # type: ignore[arg-type]
    response = await route.handler({"id": t.brand}, {})
    assert response.status == 200
    assert response.body["counts"] == {"READY": 2, "FAILED": 1, "IN_FLIGHT": 1}
    assert [c["material_id"] for c in response.body["next_candidates"]] == [b]  # a is in flight
    assert (await route.handler({"id": str(uuid.uuid4())}, {})).status == 404
    with pytest.raises(ValueError, match="brand id must be a UUID"):  # the router answers 400
        await route.handler({"id": "nope"}, {})
    assert (await route.handler({"id": t.brand}, {"strategy": "best"})).status == 400
    assert a
