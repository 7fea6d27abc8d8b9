"""Which handler takes each event type content handles: the consumer's handlers (bound to
the dependencies in bootstrap.py) and the interface (interface.py) both come from this map."""

from __future__ import annotations

from hopcast_content.service_layer.edits import edit_submitted
from hopcast_content.service_layer.materials import (
    material_archived,
    material_deleted,
    material_restored,
    material_submitted,
)
from hopcast_content.service_layer.outcomes import (
    engagement_updated,
    post_deleted_or_restored,
    post_published,
    run_completed,
)
from hopcast_content.service_layer.projections import (
    schedule_deleted,
    schedule_upserted,
)
from hopcast_content.service_layer.runs import run_deadline_passed, schedule_due
from hopcast_shared.dispatch import Dispatch, batched
from hopcast_shared.tenants import tenant_dispatch

DISPATCH: Dispatch = {
    **tenant_dispatch(),
    "ScheduleCreated": schedule_upserted,
    "ScheduleUpdated": schedule_upserted,
    "ScheduleDeleted": schedule_deleted,
    "MaterialSubmitted": material_submitted,
    "MaterialArchived": material_archived,
    "MaterialDeleted": material_deleted,
    "MaterialRestored": material_restored,
    "ScheduleDue": batched(schedule_due),
    "RunDeadlinePassed": run_deadline_passed,
    "PostPublished": post_published,
    "ScheduleRunCompleted": run_completed,
    "EngagementUpdated": engagement_updated,
    "PostDeleted": post_deleted_or_restored,
    "PostRestored": post_deleted_or_restored,
    "PendingPostApproved": edit_submitted,  # with texts: the reviewer's edit, checked here
}
