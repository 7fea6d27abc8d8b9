"""Who may do what on Kafka (DESIGN.md "Who may do what"): the one table of principals and their
ACLs, derived from the contract's topics and each installed service's interface, and applied
to a broker with Kafka's own CreateAcls request.

- a service (`scheduler`, `content`, `billing`, `publisher`) writes the topics of the event
  types it emits and its dead-letter topic, reads the topics it consumes, with its own group;
- `upstream` writes upstream.events only; `dashboard` reads analytics.events only, with groups
  whose ids start with `dashboard`;
- `monitor` (a Kafka exporter: consumer lag read from the broker, so it is there when every
  consumer is down) describes the contract's topics and the services' groups, and reads
  nothing;
- `admin` creates topics and ACLs (a super user on the local broker; on Strimzi, the ACLs below).

The local stack creates these ACLs (`apply_acls`), `make deploy-check` checks the Strimzi
`KafkaUser` resources against the same table (deploy/kafka_acls_check.py). An idempotent
producer needs no cluster-wide IdempotentWrite since Kafka 3.0 (KIP-679): WRITE on a topic
is enough, and no Hopcast client is transactional.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hopcast_shared.settings import SERVICES, KafkaSettings
from hopcast_shared.topics import ANALYTICS, DLQ_TOPICS, EVENT_TOPICS, UPSTREAM, dlq_topic

UPSTREAM_PRINCIPAL = "upstream"
DASHBOARD_PRINCIPAL = "dashboard"
MONITOR_PRINCIPAL = "monitor"
ADMIN_PRINCIPAL = "admin"
PRINCIPALS: tuple[str, ...] = (
    *SERVICES,
    UPSTREAM_PRINCIPAL,
    DASHBOARD_PRINCIPAL,
    MONITOR_PRINCIPAL,
    ADMIN_PRINCIPAL,
)
# Consumer groups of the dashboard principal start with this (PREFIXED pattern).
DASHBOARD_GROUP_PREFIX = "dashboard"

Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "describe", "create", "describe_configs", "alter", "alter_configs"]

# Kafka's wire codes (org.apache.kafka.common.resource.ResourceType, PatternType, acl.AclOperation).
_RESOURCE_CODE: dict[Resource, int] = {"topic": 2, "group": 3, "cluster": 4}
_PATTERN_CODE: dict[Pattern, int] = {"literal": 3, "prefixed": 4}
_OPERATION_CODE: dict[Operation, int] = {
    "read": 3,
    "write": 4,
    "create": 5,
    "alter": 7,
    "describe": 8,
    "describe_configs": 10,
    "alter_configs": 11,
}
_ALLOW = 3
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW rule: `principal` (a user name, without `User:`) may `operation` on a resource."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"


@dataclass(frozen=True)
class Grants:
    """What a service does on Kafka (unprefixed topic names): its interface, seen by the ACLs."""

    name: str
    consumes: tuple[str, ...]
    writes: tuple[str, ...]


def service_grants() -> list[Grants]:
    """Each installed service's topics: it reads what it consumes; it writes the topics of the
    event types it emits (contract registry) and its dead-letter topic."""
    from hopcast_shared.contract.asyncapi import installed_interfaces
    from hopcast_shared.contract.registry import EVENT_TYPES

    found = []
    for interface in installed_interfaces():
        writes = {topic for name in interface.emits for topic in EVENT_TYPES[name].topics}
        writes.add(dlq_topic(interface.name))
        found.append(Grants(interface.name, tuple(interface.consumes), tuple(sorted(writes))))
    return found


def acl_table(topic_prefix: str = "", services: Sequence[Grants] | None = None) -> list[Acl]:
    """Every ALLOW rule of every principal except the local super user `admin`, for topics under
    `topic_prefix` (group ids are not prefixed: a service's group is its name)."""
    acls: list[Acl] = []
    for grants in service_grants() if services is None else services:
        acls += [Acl(grants.name, "topic", topic_prefix + t, "read") for t in grants.consumes]
        acls += [Acl(grants.name, "topic", topic_prefix + t, "write") for t in grants.writes]
        acls.append(Acl(grants.name, "group", grants.name, "read"))
    acls.append(Acl(UPSTREAM_PRINCIPAL, "topic", topic_prefix + UPSTREAM, "write"))
    acls.append(Acl(DASHBOARD_PRINCIPAL, "topic", topic_prefix + ANALYTICS, "read"))
    acls.append(Acl(DASHBOARD_PRINCIPAL, "group", DASHBOARD_GROUP_PREFIX, "read", "prefixed"))
    acls += [Acl(MONITOR_PRINCIPAL, "topic", topic_prefix + t, "describe") for t in (*EVENT_TOPICS, *DLQ_TOPICS)]
    acls += [Acl(MONITOR_PRINCIPAL, "group", service, "describe") for service in SERVICES]
    return sorted(set(acls))


def admin_acls(topic_prefix: str = "") -> list[Acl]:
    """What `admin` needs where it is not a super user (Strimzi): create and describe the
    contract's topics (`hopcast topics create`), read every group's offsets (lag, the demo's fence),
    and replay dead letters to any topic (`hopcast dlq replay`)."""
    names = (*EVENT_TOPICS, *DLQ_TOPICS)
    acls = [Acl(ADMIN_PRINCIPAL, "cluster", CLUSTER_NAME, op) for op in ("create", "describe")]
    for name in names:
        for op in ("create", "describe", "describe_configs", "read", "write"):
            acls.append(Acl(ADMIN_PRINCIPAL, "topic", topic_prefix + name, op))
    acls.append(Acl(ADMIN_PRINCIPAL, "group", "*", "describe"))  # "*": every group
    return sorted(acls)


def by_principal(acls: Iterable[Acl]) -> dict[str, list[Acl]]:
    table: dict[str, list[Acl]] = {}
    for acl in sorted(acls):
        table.setdefault(acl.principal, []).append(acl)
    return table


# --- applying the table to a broker ---------------------------------------------------------------


class AclError(RuntimeError):
    """The broker refused to create an ACL."""


def _create_acls_request(acls: Sequence[Acl]) -> object:
    """A CreateAcls request (v1, the oldest Kafka 4 accepts) for many rules at once; aiokafka's
    own CreateAclsRequest carries a single rule."""
    from aiokafka.protocol.admin import CreateAclsRequest_v1
    from aiokafka.protocol.api import Request

    creations = [
        (
            _RESOURCE_CODE[a.resource],
            a.name,
            _PATTERN_CODE[a.pattern],
            f"User:{a.principal}",
            "*",
            _OPERATION_CODE[a.operation],
            _ALLOW,
        )
        for a in acls
    ]

    class CreateManyAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
        API_KEY = 30

        def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
            return request_struct_class(creations)

    return CreateManyAcls()


def _describe_all_acls_request() -> object:
    """A DescribeAcls request (v1) matching every ACL: any resource, pattern, principal, operation."""
    from aiokafka.protocol.admin import DescribeAclsRequest_v1
    from aiokafka.protocol.api import Request

    class DescribeAllAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
        API_KEY = 29

        def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
            return request_struct_class(1, None, 1, None, None, 1, 1)  # ANY everywhere

    return DescribeAllAcls()


def _known(response: Any) -> set[Acl]:
    """The ALLOW rules of a DescribeAcls response, in the table's terms (others skipped)."""
    resources = {v: k for k, v in _RESOURCE_CODE.items()}
    patterns = {v: k for k, v in _PATTERN_CODE.items()}
    operations = {v: k for k, v in _OPERATION_CODE.items()}
    found = set()
    for resource_type, name, pattern, rules in response.resources:
        for principal, _host, operation, permission in rules:
            if permission == _ALLOW and resource_type in resources and operation in operations:
                principal_name = principal.removeprefix("User:")
                found.add(Acl(principal_name, resources[resource_type], name, operations[operation], patterns[pattern]))
    return found


async def apply_acls(kafka: KafkaSettings, acls: Sequence[Acl], *, visible_within_s: float = 30.0) -> int:
    """Create the ACLs on the broker `kafka` reaches (as a principal allowed to: the super user);
    creating one that exists is a no-op. Returns once the broker itself answers with them (the
    controller commits them first; a client started right after the call must find them in
    force). Returns how many were sent."""
    from aiokafka.admin import AIOKafkaAdminClient

    from hopcast_shared.kafka import connection_kwargs

    if not acls:
        return 0
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        node = admin._client.get_random_node()
        response = await admin._client.send(node, _create_acls_request(acls))
        failures = [
            f"{acl}: error {code} {message or ''}".strip()
            for acl, (code, message) in zip(acls, response.creation_responses, strict=True)
            if code != 0
        ]
        if failures:
            raise AclError("creating ACLs failed: " + "; ".join(failures))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + visible_within_s
        while not set(acls) <= _known(await admin._client.send(node, _describe_all_acls_request())):
            if loop.time() > deadline:
                raise AclError(f"the broker did not show the ACLs within {visible_within_s:.0f}s of creating them")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return len(acls)
