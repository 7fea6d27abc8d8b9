"""A material's lifecycle: submitted (UPLOADED), processed (embedded: READY, or FAILED with the
reason), archived, deleted and restored."""

from __future__ import annotations

import logging

from hopcast_content import metrics
from hopcast_content.adapters.materials import Materials
from hopcast_content.domain.embedding import Embedding, EmbeddingError, content_hash
from hopcast_content.domain.materials import Material, MaterialStatus, embedding_text, processing_problem
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.tenancy import refuse_another_organizations, refuse_unknown_material
from hopcast_shared.contract import MaterialArchived, MaterialDeleted, MaterialRestored, MaterialSubmitted
from hopcast_shared.handling import EventContext

log = logging.getLogger(__name__)


async def material_submitted(deps: ContentDeps, ctx: EventContext, data: MaterialSubmitted) -> None:
    org = ctx.envelope.organizationid
    materials = deps.materials(ctx.conn)
    owner = await materials.owner(data.material_id)
    if owner is not None and owner != org:
        refuse_another_organizations("material", data.material_id)
    brand = await deps.projections(ctx.conn).brand(data.brand_profile_id)
    if brand is not None and brand.organization_id != org:
        refuse_another_organizations("brand", data.brand_profile_id)
    inserted = await materials.insert(
        {
            "id": data.material_id,
            "organization_id": org,
            "brand_profile_id": data.brand_profile_id,
            "type": str(data.type),
            "title": data.title,
            "body": data.body,
            "media_urls": [m.url for m in data.media],
            "media": [m.model_dump(mode="json") for m in data.media],
            "content_pillar": data.content_pillar,
            "max_uses": data.max_uses,
        }
    )
    if not inserted:
        log.info("material %s was submitted before; the new submission is ignored", data.material_id)
        return
    metrics.MATERIALS.labels(MaterialStatus.UPLOADED.value).inc()
    if deps.settings.process_inline:
        material = await materials.get(data.material_id, org, lock=True)
        assert material is not None
        await process_material(deps, materials, material)


async def process_material(deps: ContentDeps, materials: Materials, material: Material) -> MaterialStatus:
    """UPLOADED -> PROCESSING -> READY (embedded) or FAILED with the reason, in the
    transaction of `materials`."""
    await materials.set_status(material.id, MaterialStatus.PROCESSING)
    problem = processing_problem(material.text)
    text = embedding_text(material.text)
    if problem is None:
        try:
            [vector] = await deps.embedder.embed([text])
        except EmbeddingError as exc:
            problem = f"embedding failed: {exc}"
    if problem is not None:
        await materials.set_status(material.id, MaterialStatus.FAILED, failure_reason=problem)
        metrics.MATERIALS.labels(MaterialStatus.FAILED.value).inc()
        return MaterialStatus.FAILED
    digest = content_hash(text)
    await materials.ready(
        Embedding(
            organization_id=material.organization_id,
            brand_profile_id=material.brand_profile_id,
            kind="MATERIAL",
            source_id=material.id,
            material_id=material.id,
            content_hash=digest,
            material_hash=digest,
            embedding=vector,
        )
    )
    metrics.MATERIALS.labels(MaterialStatus.READY.value).inc()
    return MaterialStatus.READY


async def material_archived(deps: ContentDeps, ctx: EventContext, data: MaterialArchived) -> None:
    materials = deps.materials(ctx.conn)
    if await materials.get(data.material_id, ctx.envelope.organizationid, lock=True) is None:
        await refuse_unknown_material(materials, ctx, data.material_id)
    await materials.set_status(data.material_id, MaterialStatus.ARCHIVED)


async def material_deleted(deps: ContentDeps, ctx: EventContext, data: MaterialDeleted) -> None:
    materials = deps.materials(ctx.conn)
    if not await materials.set_deleted(data.material_id, ctx.envelope.organizationid, True):
        await refuse_unknown_material(materials, ctx, data.material_id)


async def material_restored(deps: ContentDeps, ctx: EventContext, data: MaterialRestored) -> None:
    materials = deps.materials(ctx.conn)
    if not await materials.set_deleted(data.material_id, ctx.envelope.organizationid, False):
        await refuse_unknown_material(materials, ctx, data.material_id)
