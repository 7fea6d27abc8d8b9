"""A world for the security suites (tests/security): the services, a recorder of every outbound
topic and dead letter, an upstream producer, a raw producer for hostile bytes, and every plaintext
token the suite sent (what the secret scans look for)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from hopcast_shared.contract import Envelope
from hopcast_shared.topics import ANALYTICS
from hopcast_stack import faults, workload
from hopcast_stack.services import ServiceSet
from hopcast_stack.upstream import Upstream
from hopcast_stack.workload import Org, Recorder


@dataclass
class World:
    services: ServiceSet
    recorder: Recorder
    upstream: Upstream
    producer: AIOKafkaProducer
    plaintexts: list[str] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def send_raw(
        self, topic: str, value: bytes | None, *, key: str | None, headers: Sequence[tuple[str, bytes | None]] = ()
    ) -> tuple[str, int, int]:
        """Publish bytes to a topic (name without prefix) as a hostile producer would; returns
        (topic, partition, offset), which a dead letter names as its source."""
        meta = await self.producer.send_and_wait(
            self.services.kafka.topic(topic), value, key=key.encode() if key else None, headers=list(headers) or None
        )
        return topic, meta.partition, meta.offset

    async def org(self, *, credits: int = 300, materials: int = 4) -> Org:
        """A new organization with a brand, two accounts, materials and an autopilot schedule,
        landed in every service."""
        [org] = workload.new_orgs(1, credits)
        await self.upstream.send_all(workload.seed_events(self.services, org, materials, self.rng))
        self.plaintexts += org.tokens
        await self.upstream.wait_consumed(within=120)
        return org

    async def send(self, *events: Envelope) -> None:
        await self.upstream.send_all(events)

    async def run(self, org: Org, *, within: float = 120) -> tuple[str, str]:
        """Post now; (run id, outcome) once the run completed."""
        trigger = org.event("ScheduleTriggerRequested", schedule_id=org.schedule)
        await self.upstream.send(trigger)
        deadline = time.monotonic() + within
        while True:
            runs = faults.run_triggers(self.recorder)
            run = runs.get(str(trigger.id))
            if run is not None and run in self.recorder.completions():
                [done] = [
                    r
                    for r in self.recorder.of("ScheduleRunCompleted", topic=ANALYTICS)
                    if r.value["data"]["run_id"] == run
                ][:1]
                return run, str(done.value["data"]["outcome"])
            assert time.monotonic() < deadline, f"run of trigger {trigger.id} did not complete"
            await asyncio.sleep(0.1)

    def events(self, type_name: str, *, topic: str | None = None, **data: Any) -> list[dict[str, Any]]:
        """Distinct events of a type (on `topic`, or any) whose data has these values."""
        return [
            r.value
            for r in {r.value.get("id"): r for r in self.recorder.of(type_name, topic=topic)}.values()
            if all((r.value.get("data") or {}).get(k) == v for k, v in data.items())
        ]

    async def quiet(self, *, within: float = 120) -> None:
        """Until every group read everything it consumes and every outbox is empty."""
        deadline = time.monotonic() + within
        while not (
            await faults.groups_caught_up(self.services.kafka)
            and not any((await faults.outbox_left(self.services)).values())
        ):
            assert time.monotonic() < deadline, "the services did not catch up"
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # the recorder reads what the relays sent last
