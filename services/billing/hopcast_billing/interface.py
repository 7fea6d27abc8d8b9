"""What billing exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_billing.service_layer.handlers import DISPATCH
from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER, SCHEDULER, UPSTREAM

INTERFACE = ServiceInterface(
    name="billing",
    summary="Keeps the credit ledger: debits each pending post once, refunds failures and rejections, grants credits.",
    consumes=(UPSTREAM, SCHEDULER, CONTENT, PUBLISHER, ANALYTICS),
    handles=tuple(DISPATCH),
    emits=("CreditsDebited", "CreditsDebitRejected", "CreditsRefunded", "CreditsUsage", "ScheduleRunCompleted"),
)
