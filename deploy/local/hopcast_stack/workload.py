"""The chaos suite's workload and its recorder: organizations seeded through upstream.events,
runs kept flowing, every outbound event recorded as a dashboard would (tests/chaos, the hostile
suite's world, `hopcast_stack.probe`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hopcast_shared.contract import Envelope
from hopcast_shared.contract.envelope import CONTENT_TYPE
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import account_transit_aad
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, DLQ_TOPICS, PUBLISHER, SCHEDULER, UPSTREAM
from hopcast_stack.services import ServiceSet
from hopcast_stack.texts import distinct_text

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# What the checks read: the saga's topics and the dead letters.
RECORDED = (SCHEDULER, CONTENT, BILLING, PUBLISHER, ANALYTICS, *DLQ_TOPICS)
# The topic each service's outbox relay publishes its own events to.
OWN_TOPIC = {"scheduler": SCHEDULER, "content": CONTENT, "billing": BILLING, "publisher": PUBLISHER}


@dataclass(frozen=True)
class Record:
    topic: str  # without the prefix
    partition: int
    offset: int
    timestamp_ms: int
    seen_at: float  # time.time() when the recorder read it
    value: dict[str, Any]
    raw: bytes


class Recorder:
    """Every record of `topics` from offset zero, kept by (topic, partition, offset), read by a
    consumer that outlives broker restarts (on an error it starts again and reads on from where
    it was). No consumer group: nothing of the services' is touched."""

    def __init__(self, kafka: KafkaSettings, topics: Sequence[str] = RECORDED) -> None:
        self.kafka = kafka
        self.topics = tuple(topics)
        self.records: dict[tuple[str, int, int], Record] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._run(), name="chaos-recorder")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: read on once it is back
                self.restarts += 1
                log.info("recorder restarts after %s", exc)
                await asyncio.sleep(1.0)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(self.kafka))
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            by_name = {self.kafka.topic(t): t for t in self.topics}
            tps = [TopicPartition(n, p) for n in by_name for p in sorted(cluster.partitions_for_topic(n) or ())]
            consumer.assign(tps)
            for tp in tps:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for tp, records in batches.items():
                    for r in records:
                        try:
                            value = json.loads(r.value or b"")
                        except ValueError:
                            value = {}
                        name = by_name[tp.topic]
                        self.records[(name, r.partition, r.offset)] = Record(
                            name,
                            r.partition,
                            r.offset,
                            r.timestamp,
                            now,
                            value if isinstance(value, dict) else {},
                            r.value or b"",
                        )
                        self._positions[tp] = r.offset + 1
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def of(self, type_name: str | None = None, *, topic: str | None = None) -> list[Record]:
        return [
            r
            for r in list(self.records.values())
            if (topic is None or r.topic == topic) and (type_name is None or r.value.get("type") == type_name)
        ]

    def completions(self) -> dict[str, set[str]]:
        """run id -> the distinct event ids of its ScheduleRunCompleted."""
        found: dict[str, set[str]] = defaultdict(set)
        for r in self.of("ScheduleRunCompleted", topic=ANALYTICS):
            found[r.value["data"]["run_id"]].add(r.value["id"])
        return found

    def dead_letters(self) -> list[Record]:
        return [r for r in list(self.records.values()) if r.topic.endswith(".dlq")]


class ResilientProducer:
    """An upstream producer that keeps an event's id across retries and starts itself anew after
    a failure (a broker restart can leave an idempotent producer stuck)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._producer: AIOKafkaProducer | None = None
        self.retries = 0

    async def _get(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                enable_idempotence=True, acks="all", request_timeout_ms=15_000, **connection_kwargs(self.kafka)
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        within: float = 180,
    ) -> None:
        """Publish to a full topic name, retrying until acknowledged."""
        deadline = time.monotonic() + within
        while True:
            try:
                producer = await self._get()
                await asyncio.wait_for(producer.send_and_wait(topic, value, key=key, headers=list(headers)), 30)
                return
            except Exception:
                self.retries += 1
                await self.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)

    async def send(self, event: Envelope) -> None:
        await self.send_raw(
            self.kafka.topic(UPSTREAM),
            event.to_json(),
            key=str(event.organizationid).encode(),
            headers=[("content-type", CONTENT_TYPE.encode())],
        )


def material_text(rng: random.Random) -> str:
    """A text unlike the others to any embedder, so the duplicate check lets every run draft."""
    return distinct_text(rng)


def quiet_days() -> list[int]:
    """A day of the week that is neither today nor tomorrow anywhere: the schedules fire only when triggered."""
    return [(datetime.now(UTC).isoweekday() % 7 + 3) % 7]


@dataclass
class Org:
    """An organization of the workload: a brand, accounts on two platforms, materials and a schedule."""

    id: str
    brand: str
    schedule: str
    credits: int
    accounts: dict[str, str]
    tokens: list[str]

    def event(self, type_name: str, **changes: Any) -> Envelope:
        return example_event(type_name, organization_id=self.id, time=datetime.now(UTC), **changes)


PLATFORMS = ("MASTODON", "BLUESKY")


def seed_events(services: ServiceSet, org: Org, materials: int, rng: random.Random) -> list[Envelope]:
    """The facts of one organization: created, brand, subscription, accounts (tokens encrypted
    under the services' keys; the plaintexts are kept in `org.tokens` for the secret scans),
    links, materials, an autopilot schedule on both platforms."""
    now = datetime.now(UTC)
    events = [
        org.event("OrganizationCreated"),
        org.event("BrandProfileCreated", brand_profile_id=org.brand),
        org.event(
            "SubscriptionActivated",
            subscription_id=str(uuid.uuid4()),
            plan="STARTER",
            credits_total=org.credits,
            period_start=(now - timedelta(days=1)).isoformat(),
            period_end=(now + timedelta(days=29)).isoformat(),
        ),
    ]
    for platform in PLATFORMS:
        token = f"plain-{platform.lower()}-{uuid.uuid4().hex}"
        org.tokens.append(token)
        org.accounts[platform] = str(uuid.uuid4())
        events += [
            org.event(
                "SocialAccountConnected",
                social_account_id=org.accounts[platform],
                platform=platform,
                handle=f"@chaos-{platform.lower()}",
                access_token=services.keyring.encrypt(
                    token, associated_data=account_transit_aad(org.id, org.accounts[platform])
                ),
                refresh_token=None,
                token_expires_at=(now + timedelta(days=30)).isoformat(),
            ),
            org.event(
                "BrandAccountLinked",
                brand_profile_id=org.brand,
                social_account_id=org.accounts[platform],
                is_default=True,
            ),
        ]
    events += [
        org.event(
            "MaterialSubmitted",
            material_id=str(uuid.uuid4()),
            brand_profile_id=org.brand,
            body=material_text(rng),
            max_uses=1,
        )
        for _ in range(materials)
    ]
    events.append(
        org.event(
            "ScheduleCreated",
            schedule_id=org.schedule,
            brand_profile_id=org.brand,
            timezone="UTC",
            times=["03:00"],
            days_of_week=quiet_days(),
            platforms=list(PLATFORMS),
            generation_mode="autopilot",
        )
    )
    return events


def new_orgs(count: int, credits: int) -> list[Org]:
    return [Org(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), credits, {}, []) for _ in range(count)]


@dataclass
class Workload:
    """Fires "post now" runs, round-robin over the organizations, a few at a time from tasks of
    their own, so runs are in flight whenever a fault strikes."""

    producer: ResilientProducer
    orgs: list[Org]
    interval_s: float = 0.05
    sent: list[tuple[float, str, str]] = field(default_factory=list)  # (time.time(), org, trigger event id)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _next: int = 0

    def fire(self, count: int) -> None:
        """Start sending `count` triggers (returns at once)."""
        picks = [self.orgs[(self._next + i) % len(self.orgs)] for i in range(count)]
        self._next += count
        self._tasks.append(asyncio.create_task(self._send(picks)))

    async def _send(self, orgs: list[Org]) -> None:
        for org in orgs:
            event = org.event("ScheduleTriggerRequested", schedule_id=org.schedule)
            await self.producer.send(event)
            self.sent.append((time.time(), org.id, str(event.id)))
            await asyncio.sleep(self.interval_s)

    async def finished(self, within: float) -> None:
        await asyncio.wait_for(asyncio.gather(*self._tasks), within)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
