"""A material's lifecycle as the service layer decides it, on content in memory: given these
events, expect these materials (the same handlers run on the real database in the
integration tests)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.config import ContentSettings
from hopcast_content.domain.embedding import EmbeddingError
from hopcast_content.domain.materials import MaterialStatus
from hopcast_content.service_layer.materials import (
    material_archived,
    material_deleted,
    material_restored,
    material_submitted,
)
from hopcast_shared.handling import PermanentError
from hopcast_shared.tenants import brand_upserted

TEXT = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."


class BrokenEmbedder(HashingEmbedder):
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise EmbeddingError("embeddings API: 503")


async def submit(content: Any, org: uuid.UUID, brand: uuid.UUID, **values: Any) -> uuid.UUID:
    material_id = uuid.uuid4()
    values = {"material_id": str(material_id), "brand_profile_id": str(brand), "title": None, "body": TEXT} | values
    await material_submitted(content.deps, *content.ctx("MaterialSubmitted", org, **values))
    return material_id


async def test_a_submitted_material_is_embedded_and_ready_and_a_resubmission_changes_nothing(content: Any) -> None:
    org, brand = uuid.uuid4(), uuid.uuid4()
    material_id = await submit(content, org, brand, content_pillar="behind the scenes")
    stored = content.world.materials[material_id]
    assert stored.status is MaterialStatus.READY and stored.content_hash
    [embedding] = content.world.embeddings
    assert (embedding.kind, embedding.source_id, embedding.organization_id) == ("MATERIAL", material_id, org)
    assert embedding.content_hash == embedding.material_hash == stored.content_hash
    again = {"material_id": str(material_id), "brand_profile_id": str(brand), "body": "Another text entirely."}
    await material_submitted(content.deps, *content.ctx("MaterialSubmitted", org, **again))
    assert content.world.materials[material_id].material.text.body == TEXT and len(content.world.embeddings) == 1


async def test_a_material_with_nothing_to_draft_from_or_no_embedding_fails_with_the_reason(
    content: Any, content_with: Callable[..., Any]
) -> None:
    org, brand = uuid.uuid4(), uuid.uuid4()
    empty = await submit(content, org, brand, body="", type="TEXT", media_urls=["https://cdn.example/a.png"])
    stored = content.world.materials[empty]
    assert stored.status is MaterialStatus.FAILED and "needs a title or a body" in (stored.failure_reason or "")
    down = content_with(embedder=BrokenEmbedder(384))
    broken = await submit(down, org, brand)
    stored = down.world.materials[broken]
    assert stored.status is MaterialStatus.FAILED and stored.failure_reason == "embedding failed: embeddings API: 503"
    assert down.world.embeddings == []


async def test_without_inline_processing_a_material_waits_uploaded(content_with: Callable[..., Any]) -> None:
    later = content_with(ContentSettings(process_inline=False))
    material_id = await submit(later, uuid.uuid4(), uuid.uuid4())
    assert later.world.materials[material_id].status is MaterialStatus.UPLOADED and later.world.embeddings == []


async def test_archive_delete_and_restore_apply_to_the_organizations_own_material(content: Any) -> None:
    org, brand = uuid.uuid4(), uuid.uuid4()
    material_id = await submit(content, org, brand)
    named = {"material_id": str(material_id)}
    await material_deleted(content.deps, *content.ctx("MaterialDeleted", org, **named))
    assert content.world.materials[material_id].deleted
    await material_restored(content.deps, *content.ctx("MaterialRestored", org, **named))
    assert not content.world.materials[material_id].deleted
    await material_archived(content.deps, *content.ctx("MaterialArchived", org, **named))
    assert content.world.materials[material_id].status is MaterialStatus.ARCHIVED
    unknown = {"material_id": str(uuid.uuid4())}
    with pytest.raises(PermanentError, match="unknown material"):
        await material_archived(content.deps, *content.ctx("MaterialArchived", org, **unknown))


async def test_another_organizations_material_or_brand_is_refused(content: Any) -> None:
    owner, other, brand = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await brand_upserted(content.deps, *content.ctx("BrandProfileCreated", owner, brand_profile_id=str(brand)))
    material_id = await submit(content, owner, brand)
    before = dict(content.world.materials)
    with pytest.raises(PermanentError, match=f"material {material_id} belongs to another organization"):
        await submit(content, other, uuid.uuid4(), material_id=str(material_id))
    with pytest.raises(PermanentError, match=f"brand {brand} belongs to another organization"):
        await submit(content, other, brand)
    for handler, type_name in ((material_deleted, "MaterialDeleted"), (material_archived, "MaterialArchived")):
        with pytest.raises(PermanentError, match=f"material {material_id} belongs to another organization"):
            await handler(content.deps, *content.ctx(type_name, other, material_id=str(material_id)))
    assert content.world.materials == before and not content.world.materials[material_id].deleted
