"""GET /brands/{id}/materials: the brand's materials counted by status, and the next
candidates in the order a round-robin run would try them (or ?strategy=...).
GET /organizations/{id}/overview: the organization's active brands and ready materials."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.overview import brands_and_ready_materials
from hopcast_content.adapters.projections import Projections
from hopcast_content.config import ContentSettings
from hopcast_content.domain.selection import order_candidates
from hopcast_shared.contract import MaterialStrategy
from hopcast_shared.http import JsonResponse, JsonRoute, path_id
from hopcast_shared.service import ServiceRuntime


def routes(runtime: ServiceRuntime, settings: ContentSettings) -> Sequence[JsonRoute]:
    async def brand_materials(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        brand_id = path_id(path, "brand")
        try:
            strategy = MaterialStrategy(query.get("strategy", MaterialStrategy.ROUND_ROBIN.value))
        except ValueError:
            return JsonResponse(400, {"error": f"strategy is one of {', '.join(s.value for s in MaterialStrategy)}"})
        async with runtime.db.pool.acquire() as conn:
            brand = await Projections(conn).brand(brand_id)
            if brand is None:
                return JsonResponse(404, {"error": "no such brand"})
            materials = Materials(conn)
            counts = await materials.counts(brand_id)
            selectable = await materials.selectable_candidates(
                [(brand_id, brand.organization_id)], in_flight_hours=settings.in_flight_hours
            )
            candidates = selectable.get(brand_id, [])
            ordered = order_candidates(strategy, candidates, random.Random(0), targets=brand.pillar_targets())[
                : settings.max_candidates
            ]
            titles = await materials.titles([c.material_id for c in ordered])
        return JsonResponse(
            200,
            {
                "brand_profile_id": str(brand_id),
                "organization_id": str(brand.organization_id),
                "active": not brand.deleted,
                "counts": counts,
                "strategy": strategy.value,
                "next_candidates": [
                    {
                        "material_id": str(c.material_id),
                        "title": titles.get(c.material_id),
                        "content_pillar": c.content_pillar,
                        "usage_count": c.usage_count,
                        "last_used_at": c.last_used_at.isoformat() if c.last_used_at else None,
                        "engagement": c.engagement,
                    }
                    for c in ordered
                ],
            },
            organization=brand.organization_id,
        )

    async def overview(path: dict[str, str], query: dict[str, str]) -> JsonResponse:
        org = path_id(path, "organization")
        async with runtime.db.pool.acquire() as conn:
            brands, ready = await brands_and_ready_materials(conn, org)
        return JsonResponse(
            200,
            {"organization_id": str(org), "active_brands": brands, "ready_materials": ready},
            organization=org,
        )

    return [
        JsonRoute("/brands/{id}/materials", brand_materials),
        JsonRoute("/organizations/{id}/overview", overview),
    ]
