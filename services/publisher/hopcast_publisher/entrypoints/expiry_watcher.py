"""The expiry watcher: a background loop of every publisher replica that ends the manual-mode
drafts past their approval deadline (`service_layer/expiry.py`). Replicas share the work
without coordination: each claims with SKIP LOCKED, so a draft expires once."""

from __future__ import annotations

import asyncio

from hopcast_publisher.service_layer.expiry import expire_overdue_drafts
from hopcast_shared.service import BackgroundTask, ServiceRuntime

BATCH = 500


def expiry_watcher(interval_s: float) -> BackgroundTask:
    """Every `interval_s` (at once again while whole batches come back)."""

    async def expiry_watcher(runtime: ServiceRuntime) -> None:
        while True:
            while await expire_overdue_drafts(runtime.db, runtime.kafka, limit=BATCH) >= BATCH:
                pass
            await asyncio.sleep(interval_s)

    return expiry_watcher
