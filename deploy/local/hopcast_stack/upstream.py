"""Acting as an upstream system (the web app, the billing provider): publish facts to
upstream.events as the contract says (keyed by organization id, CloudEvents content type, tokens
encrypted with the shared module), and wait until the services have read them.

Kafka keeps no order across topics: a producer that seeds a brand's facts and then asks for a
run must let the facts land first, or content may meet the run before the brand's materials.
`wait_consumed` is that fence: it waits until each service's consumer group has committed an
offset past everything this producer sent (what a dashboard of consumer lag would show).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hopcast_shared.contract import Envelope, new_event
from hopcast_shared.contract.envelope import CONTENT_TYPE
from hopcast_shared.contract.registry import model_for
from hopcast_shared.crypto import Keyring, account_transit_aad
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import SERVICES, KafkaSettings
from hopcast_shared.topics import UPSTREAM

Message = tuple[bytes, list[tuple[str, bytes]]]
"""A Kafka message's value and headers."""


def structured(event: Envelope) -> Message:
    """The event in CloudEvents structured mode, as Hopcast's own producers write it."""
    return event.to_json(), [("content-type", CONTENT_TYPE.encode())]


def upstream_event(
    type_name: str,
    organization: uuid.UUID | str,
    /,
    *,
    source: str = "upstream/webapp",
    time: datetime | None = None,
    **data: Any,
) -> Envelope:
    """An inbound event of the contract for an organization, its data validated by the contract's
    model (data that names the organization, OrganizationCreated's, passes it in `data` too)."""
    model = model_for(type_name).model_validate(data)
    return new_event(model, organization_id=organization, source=source, time=time)


class Upstream:
    """A producer of upstream.events. `async with Upstream(kafka) as up: await up.send(event)`."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        keyring: Keyring | None = None,
        observer: KafkaSettings | None = None,
        encode: Callable[[Envelope], Message] = structured,
    ) -> None:
        self.kafka = kafka
        self.keyring = keyring
        # How events become messages: structured mode, or any other the binding allows (the
        # tests send binary mode through the official CloudEvents SDK).
        self.encode = encode
        # Who reads the services' committed offsets in wait_consumed: the `upstream` principal
        # may only write upstream.events, so an operator's (admin) settings where ACLs are on.
        self.observer = observer or kafka
        self._started: AIOKafkaProducer | None = None
        # The highest offset this producer wrote, per partition of upstream.events.
        self.sent: dict[int, int] = {}

    async def __aenter__(self) -> Upstream:
        self._started = AIOKafkaProducer(enable_idempotence=True, acks="all", **connection_kwargs(self.kafka))
        await self._started.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._started is not None:
            await self._started.stop()
            self._started = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._started is None:
            raise RuntimeError("use `async with Upstream(...)` to start the producer first")
        return self._started

    def encrypt_token(self, plaintext: str, *, organization_id: object, social_account_id: object) -> str:
        """A token as upstream producers put it in events: ciphertext bound to its organization
        and social account (`hopcast tokens encrypt --organization ID --account ID`)."""
        if self.keyring is None:
            raise RuntimeError("this Upstream has no keyring to encrypt tokens with")
        return self.keyring.encrypt(plaintext, associated_data=account_transit_aad(organization_id, social_account_id))

    async def send(self, event: Envelope, *, headers: Mapping[str, str] | None = None) -> None:
        """Publish one event to upstream.events (keyed by its organization) and wait for the ack."""
        value, own = self.encode(event)
        meta = await self._producer.send_and_wait(
            self.kafka.topic(UPSTREAM),
            value,
            key=str(event.organizationid).encode(),
            headers=[*own, *((k, v.encode()) for k, v in (headers or {}).items())],
        )
        self.sent[meta.partition] = max(self.sent.get(meta.partition, -1), meta.offset)

    async def send_all(self, events: Iterable[Envelope]) -> None:
        """Publish in order, without waiting for each ack (one organization's events keep their order)."""
        futures = []
        for event in events:
            value, headers = self.encode(event)
            futures.append(
                await self._producer.send(
                    self.kafka.topic(UPSTREAM), value, key=str(event.organizationid).encode(), headers=headers
                )
            )
        for meta in await asyncio.gather(*futures):
            self.sent[meta.partition] = max(self.sent.get(meta.partition, -1), meta.offset)

    async def wait_consumed(self, groups: Iterable[str] = SERVICES, *, within: float = 60.0) -> None:
        """Wait until every group has committed offsets past all this producer sent (so each
        service has handled it); raise TimeoutError naming the groups still behind."""
        wanted = {TopicPartition(self.kafka.topic(UPSTREAM), p): offset + 1 for p, offset in self.sent.items()}
        if not wanted:
            return
        admin = AIOKafkaAdminClient(**connection_kwargs(self.observer))
        await admin.start()
        try:
            pending = set(groups)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while pending:
                for group in sorted(pending):
                    committed = await admin.list_consumer_group_offsets(group, partitions=list(wanted))
                    if all(
                        committed.get(tp) is not None and committed[tp].offset >= want for tp, want in wanted.items()
                    ):
                        pending.discard(group)
                if not pending:
                    return
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"{', '.join(sorted(pending))} did not read upstream.events within {within:.0f}s"
                    )
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
