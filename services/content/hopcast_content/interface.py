"""What content exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import ANALYTICS, PUBLISHER, SCHEDULER, UPSTREAM

INTERFACE = ServiceInterface(
    name="content",
    summary=(
        "Keeps the materials, picks one per run by the schedule's strategy, drafts the post and "
        "skips near-duplicates (pgvector)."
    ),
    consumes=(UPSTREAM, SCHEDULER, PUBLISHER, ANALYTICS),
    handles=(
        "OrganizationCreated",
        "OrganizationDeleted",
        "OrganizationRestored",
        "BrandProfileCreated",
        "BrandProfileUpdated",
        "BrandProfileDeleted",
        "BrandProfileRestored",
        "ScheduleCreated",
        "ScheduleUpdated",
        "ScheduleDeleted",
        "MaterialSubmitted",
        "MaterialArchived",
        "MaterialDeleted",
        "MaterialRestored",
        "ScheduleDue",
        "PostPublished",
        "ScheduleRunCompleted",
        "EngagementUpdated",
    ),
    emits=("PendingPostCreated", "ScheduleRunSkipped", "ScheduleRunCompleted"),
)
