"""What billing exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import CONTENT, PUBLISHER, UPSTREAM

INTERFACE = ServiceInterface(
    name="billing",
    summary="Keeps the credit ledger: debits each pending post once, refunds failed platforms, grants credits.",
    consumes=(UPSTREAM, CONTENT, PUBLISHER),
    handles=(
        "OrganizationCreated",
        "OrganizationDeleted",
        "OrganizationRestored",
        "SubscriptionActivated",
        "CreditsGranted",
        "PendingPostCreated",
        "PostPublishFailed",
        "PendingPostRejected",
    ),
    emits=("CreditsDebited", "CreditsDebitRejected", "CreditsRefunded", "CreditsUsage", "ScheduleRunCompleted"),
)
