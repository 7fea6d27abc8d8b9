"""What the publisher exchanges over Kafka; its AsyncAPI document (docs/asyncapi) is made from this."""

from hopcast_publisher.service_layer.handlers import DISPATCH
from hopcast_shared.contract.asyncapi import ServiceInterface
from hopcast_shared.topics import BILLING, CONTENT, SCHEDULER, UPSTREAM

INTERFACE = ServiceInterface(
    name="publisher",
    summary=(
        "Publishes a pending post once it is drafted, paid for (and approved in manual mode), "
        "through each platform's adapter; keeps accounts (tokens encrypted), posts and engagement."
    ),
    consumes=(UPSTREAM, SCHEDULER, CONTENT, BILLING),
    handles=tuple(DISPATCH),
    emits=(
        "PostPublished",
        "PostPublishFailed",
        "PostPublishDeferred",
        "PendingPostExpired",
        "ScheduleRunCompleted",
        "EngagementUpdated",
        "SocialAccountTokensRefreshed",
        "SocialAccountNeedsReauth",
    ),
)
