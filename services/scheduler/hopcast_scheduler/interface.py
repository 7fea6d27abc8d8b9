"""What the scheduler exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import ANALYTICS, UPSTREAM

INTERFACE = ServiceInterface(
    name="scheduler",
    summary="Turns recurring schedules into runs: claims due schedules and emits ScheduleDue, one per run.",
    consumes=(UPSTREAM, ANALYTICS),
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
        "SchedulePaused",
        "ScheduleResumed",
        "ScheduleDeleted",
        "ScheduleTriggerRequested",
        "MaterialSubmitted",
        "ScheduleRunCompleted",
    ),
    emits=("ScheduleDue",),
)
