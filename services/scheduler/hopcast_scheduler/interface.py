"""What the scheduler exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_scheduler.service_layer.dispatch import DISPATCH
from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER, UPSTREAM

INTERFACE = ServiceInterface(
    name="scheduler",
    summary=(
        "Turns recurring schedules into runs: claims due schedules and emits ScheduleDue, one per run; "
        "follows each run's stages and tells the services of a run past its deadline (RunDeadlinePassed)."
    ),
    consumes=(UPSTREAM, CONTENT, BILLING, PUBLISHER, ANALYTICS),
    handles=tuple(DISPATCH),
    emits=("ScheduleDue", "RunDeadlinePassed"),
)
