"""What the scheduler exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_scheduler.service_layer.handlers import DISPATCH
from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import ANALYTICS, UPSTREAM

INTERFACE = ServiceInterface(
    name="scheduler",
    summary="Turns recurring schedules into runs: claims due schedules and emits ScheduleDue, one per run.",
    consumes=(UPSTREAM, ANALYTICS),
    handles=tuple(DISPATCH),
    emits=("ScheduleDue",),
)
