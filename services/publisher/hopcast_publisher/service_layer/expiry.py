"""Approval deadlines: a manual-mode draft nobody approved or rejected in time ends EXPIRED,
with `PendingPostExpired` (billing refunds the whole debit on it) and `ScheduleRunCompleted`
EXPIRED, written with the state change in one transaction, so each run ends once whatever
the number of replicas watching."""

from __future__ import annotations

import logging

from hopcast_publisher import metrics
from hopcast_publisher.adapters.expiry import ExpiredDraft, claim_expired_drafts
from hopcast_publisher.service_layer.publishing import SOURCE, now_utc
from hopcast_shared import outbox
from hopcast_shared.contract import PendingPostExpired, RunOutcome, ScheduleRunCompleted
from hopcast_shared.db import Database
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import inject_headers

log = logging.getLogger(__name__)


async def expire_overdue_drafts(db: Database, kafka: KafkaSettings, *, limit: int = 500) -> int:
    """End one batch of drafts past their approval deadline; returns how many."""
    async with db.transaction() as conn:
        drafts = await claim_expired_drafts(conn, limit=limit)
        rows = [row for draft in drafts for row in _events_of(kafka, draft)]
        await outbox.write_outbox(conn, rows)
    for draft in drafts:
        log.info("pending post %s: no decision by %s; expired", draft.id, draft.approval_deadline.isoformat())
    metrics.DRAFTS_EXPIRED.inc(len(drafts))
    metrics.RUNS_COMPLETED.labels(RunOutcome.EXPIRED.value).inc(len(drafts))
    return len(drafts)


def _events_of(kafka: KafkaSettings, draft: ExpiredDraft) -> list[outbox.OutboxRow]:
    completed_at = now_utc()
    events = [
        PendingPostExpired(pending_post_id=draft.id, run_id=draft.run_id, approval_deadline=draft.approval_deadline),
        ScheduleRunCompleted(
            run_id=draft.run_id,
            schedule_id=draft.schedule_id,
            brand_profile_id=draft.brand_profile_id,
            outcome=RunOutcome.EXPIRED,
            due_at=draft.due_at,
            completed_at=completed_at,
        ),
    ]
    return outbox.event_rows(
        kafka,
        events,
        organization_id=draft.organization_id,
        source=SOURCE,
        correlation_id=str(draft.run_id),
        causation_id=str(draft.cause_event_id) if draft.cause_event_id else None,
        trace=inject_headers(),
    )
