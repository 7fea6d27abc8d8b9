"""The loss of one broker of a three-node cluster, for the chaos suite (tests/chaos/
test_broker_loss.py): which partitions are busiest and who leads them, SIGKILL that node and
start it again, and the figures of the recovery: the consumer groups' lag sampled all along,
the partitions left under-replicated, and when runs complete again.

Everything talks to the cluster as a client does (admin and consumer APIs, no broker internals).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ANALYTICS, EVENT_TOPICS
from hopcast_stack import procs
from hopcast_stack.faults import _start_again, consumed_topics
from hopcast_stack.kafka import _quiet_aiokafka
from hopcast_stack.kafka_cluster import KafkaCluster
from hopcast_stack.workload import Recorder, Workload


class ClusterView:
    """An admin client and a consumer (no group) on the cluster, made again after a failure."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            await self.close()
            admin = AIOKafkaAdminClient(request_timeout_ms=5000, **connection_kwargs(self.kafka))
            consumer = AIOKafkaConsumer(
                enable_auto_commit=False, request_timeout_ms=5000, **connection_kwargs(self.kafka)
            )
            await admin.start()
            await consumer.start()
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
        self._admin = self._consumer = None

    async def partitions(self, topics: tuple[str, ...] = EVENT_TOPICS) -> dict[TopicPartition, dict[str, Any]]:
        """Each partition of `topics` (prefixed): its leader, replicas and in-sync replicas."""
        admin, _ = await self.clients()
        described = await admin.describe_topics([self.kafka.topic(t) for t in topics])
        return {
            TopicPartition(t["topic"], p["partition"]): p
            for t in described
            for p in t["partitions"]
            if t.get("error_code", 0) == 0
        }

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        _, consumer = await self.clients()
        return dict(await consumer.end_offsets(tps))

    async def under_replicated(self, topics: tuple[str, ...] = EVENT_TOPICS) -> int:
        """Partitions whose in-sync replicas are fewer than their replicas (a topic the cluster
        could not describe counts as a failure, not as in sync)."""
        partitions = await self.partitions(topics)
        if {tp.topic for tp in partitions} != {self.kafka.topic(t) for t in topics}:
            raise RuntimeError("not every topic could be described")
        return sum(len(p["isr"]) < len(p["replicas"]) for p in partitions.values())

    async def lag(self) -> int:
        """The sum over every service's group of (end offset - committed offset) on what it consumes."""
        admin, consumer = await self.clients()
        total = 0
        for group, topics in consumed_topics().items():
            tps = [tp for tp in await self.partitions(topics)]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in tps:
                done = committed.get(tp)
                total += max(0, ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0))
        return total


async def busiest_leader(view: ClusterView, *, window_s: float = 2.0, top: int = 3) -> tuple[int, list[str]]:
    """The broker leading most of the `top` partitions that took the most records over `window_s`
    (by end offsets; the leader of the busiest alone breaks a tie); with the partitions' names."""
    partitions = await view.partitions()
    tps = list(partitions)
    before = await view.end_offsets(tps)
    await asyncio.sleep(window_s)
    after = await view.end_offsets(tps)
    by_rate = sorted(tps, key=lambda tp: (after[tp] - before[tp], after[tp]), reverse=True)[:top]
    leaders = Counter(partitions[tp]["leader"] for tp in by_rate)
    most = max(leaders.values())
    leader = next(partitions[tp]["leader"] for tp in by_rate if leaders[partitions[tp]["leader"]] == most)
    return int(leader), [f"{tp.topic}[{tp.partition}]+{after[tp] - before[tp]}" for tp in by_rate]


@dataclass
class LagSampler:
    """The groups' total lag every `interval_s`, in the background: (time.time(), lag or None when
    the cluster did not answer)."""

    view: ClusterView
    interval_s: float = 0.5
    samples: list[tuple[float, int | None]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LagSampler:
        self._task = asyncio.create_task(self._run(), name="lag-sampler")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                with _quiet_aiokafka():
                    lag: int | None = await asyncio.wait_for(self.view.lag(), 5)
            except asyncio.CancelledError:
                raise
            except Exception:  # the killed broker's partitions or coordinator: unknown for now
                lag = None
                await self.view.close()
            self.samples.append((time.time(), lag))
            await asyncio.sleep(self.interval_s)

    def baseline(self, before: float, *, window_s: float = 5.0) -> int:
        """The highest lag of the `window_s` before `before`: normal under this load."""
        seen = [lag for at, lag in self.samples if before - window_s <= at < before and lag is not None]
        return max(seen, default=0)

    def back_to_normal(self, since: float, baseline: int, until: float | None = None) -> float | None:
        """Seconds from `since` until the lag was known and at most the baseline again, and
        stayed known from then on (until `until`: the next fault); None when it never was."""
        after = [(at, lag) for at, lag in self.samples if since <= at < (until or float("inf"))]
        for i, (at, lag) in enumerate(after):
            if lag is not None and lag <= baseline and all(v is not None for _, v in after[i:]):
                return round(at - since, 1)
        return None

    def peak(self, since: float, until: float | None = None) -> int:
        window = (lag for at, lag in self.samples if since <= at < (until or float("inf")))
        return max((lag for lag in window if lag is not None), default=0)


@dataclass
class BrokerLoss:
    """One SIGKILL of a cluster node and its return, with what was measured."""

    node: int
    busiest: list[str]
    killed_at: float
    sending_until: float = 0.0  # when the triggers fired around the kill were all acknowledged
    back_at: float = 0.0
    restart_s: float = 0.0
    in_sync_s: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "busiest_partitions": self.busiest,
            "restart_s": round(self.restart_s, 1),
            "all_in_sync_after_restart_s": self.in_sync_s,
            **self.figures,
        }


async def kill_node(cluster: KafkaCluster, node_id: int) -> float:
    """SIGKILL a node (no controlled shutdown); returns when, as time.time()."""
    proc = cluster.node(node_id).process()
    assert proc is not None, f"Kafka node {node_id} is not running"
    at = time.time()
    proc.kill()
    await asyncio.to_thread(proc.wait, 10)
    return at


async def restart_node(cluster: KafkaCluster, node_id: int, loss: BrokerLoss, view: ClusterView) -> None:
    """Start the node again (as the stack starts it) and wait until no partition is under-replicated."""
    node = cluster.node(node_id)
    # Proof the kill was felt: with three replicas on three nodes every partition had one there.
    with contextlib.suppress(Exception):
        loss.figures["under_replicated_while_down"] = await view.under_replicated()
    began = time.time()
    await asyncio.to_thread(procs.wait_ports_free, list(node.ports), timeout=30)
    # As the suite starts a killed broker: again when the JVM exits at once (faults._start_again).
    loss.figures["node_starts"] = await _start_again(node.start, list(node.ports))
    loss.back_at = time.time()
    loss.restart_s = loss.back_at - began
    deadline = time.monotonic() + 120
    while True:
        try:
            if await view.under_replicated() == 0:
                loss.in_sync_s = round(time.time() - loss.back_at, 1)
                return
        except Exception:
            await view.close()
        if time.monotonic() > deadline:
            return  # in_sync_s stays None: the test says so
        await asyncio.sleep(0.5)


def runs_completing_again(loss: BrokerLoss, workload: Workload, recorder: Recorder, run_of: dict[str, str]) -> None:
    """End to end around the kill, from the outcomes the recorder saw: seconds from the kill until
    the first run triggered after it completed, and until every run in flight at the kill (triggered
    in the 10 s before it) had completed; None where a run has no outcome."""
    completed_at: dict[str, float] = {}
    for r in recorder.of("ScheduleRunCompleted", topic=ANALYTICS):
        run = r.value["data"]["run_id"]
        completed_at[run] = min(r.seen_at, completed_at.get(run, r.seen_at))

    def done(trigger: str) -> float | None:
        return completed_at.get(run_of.get(trigger, ""))

    after = [done(t) for sent, _, t in workload.sent if sent >= loss.killed_at]
    finished = [at for at in after if at is not None]
    loss.figures["first_run_after_kill_completed_s"] = round(min(finished) - loss.killed_at, 1) if finished else None
    in_flight = [done(t) for sent, _, t in workload.sent if loss.killed_at - 10 <= sent < loss.killed_at]
    loss.figures["runs_in_flight_at_kill"] = len(in_flight)
    loss.figures["runs_in_flight_completed_s"] = (
        round(max(at for at in in_flight if at is not None) - loss.killed_at, 1)
        if in_flight and all(at is not None for at in in_flight)
        else None
    )


def longest_send_stall(workload: Workload, loss: BrokerLoss) -> float:
    """The longest wait between two acknowledged triggers from the last one before the kill to
    the last one of the waves around it, less the workload's own interval: how long the
    upstream producer (acks=all) could not write."""
    before = [at for at, _, _ in workload.sent if at < loss.killed_at]
    start = max(before, default=loss.killed_at)
    acked = sorted(at for at, _, _ in workload.sent if start <= at <= loss.sending_until)
    gaps = [b - a for a, b in itertools.pairwise(acked)]
    return round(max(0.0, max(gaps, default=0.0) - workload.interval_s), 1)
