"""The background loop that processes materials left UPLOADED (inline processing off, or a
crash between submission and processing)."""

from __future__ import annotations

import asyncio

from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.materials import process_material
from hopcast_shared.service import BackgroundTask, ServiceRuntime


def material_processing_loop(deps: ContentDeps) -> BackgroundTask:
    async def processing_loop(runtime: ServiceRuntime) -> None:
        """Materials left UPLOADED: claimed (SKIP LOCKED, safe with replicas) and processed."""
        while True:
            async with runtime.db.transaction() as conn:
                materials = deps.materials(conn)
                waiting = await materials.claim_waiting(50)
                for material in waiting:
                    await process_material(deps, materials, material)
            if not waiting:
                await asyncio.sleep(deps.settings.process_interval_s)

    return processing_loop
