"""What content exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this.
The types it handles are its dispatch map's."""

from hopcast_content.service_layer.dispatch import DISPATCH
from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import ANALYTICS, PUBLISHER, SCHEDULER, UPSTREAM

INTERFACE = ServiceInterface(
    name="content",
    summary=(
        "Keeps the materials, picks one per run by the schedule's strategy, drafts the post and "
        "skips near-duplicates (pgvector); checks a reviewer's edit the same way."
    ),
    consumes=(UPSTREAM, SCHEDULER, PUBLISHER, ANALYTICS),
    handles=tuple(DISPATCH),
    emits=(
        "PendingPostCreated",
        "ScheduleRunSkipped",
        "ScheduleRunCompleted",
        "PendingPostEditAccepted",
        "PendingPostEditRefused",
    ),
)
