"""Fault injection for the chaos suite (tests/chaos): a workload of runs that keeps flowing while
services are SIGKILLed and brought back (as `make up` starts them), the broker is killed and
restarted, PostgreSQL is restarted and topics are replayed from offset zero; and the invariants
the contract promises, checked afterwards from the outbound topics and the databases.

Everything here talks to the system as the outside world does (upstream.events in, the topics
out), plus read-only SQL for the invariants that live in the databases.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER, SCHEDULER
from hopcast_stack import procs
from hopcast_stack.errors import StackError
from hopcast_stack.services import ServiceSet, installed_services, start_services

if TYPE_CHECKING:
    from hopcast_stack.pytest_plugin import TestStack

from hopcast_stack.workload import OWN_TOPIC, Record, Recorder, ResilientProducer, Workload

log = logging.getLogger(__name__)


# --- faults ----------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault: what, when (time.time()), how long until the part was back (`down_s`),
    until every service answered /ready (`ready_s`), and until a run started after it completed
    (`flow_s`, filled in by `measure_flow`)."""

    name: str
    at: float
    down_s: float = 0.0
    ready_s: float = 0.0
    flow_s: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        flow = "-" if self.flow_s is None else f"{self.flow_s:.1f}s"
        extra = "".join(f" {k}={v}" for k, v in self.detail.items())
        return f"{self.name}: back {self.down_s:.1f}s, all ready {self.ready_s:.1f}s, a new run completed {flow}{extra}"


async def wait_all_ready(services: ServiceSet, *, within: float = 180) -> None:
    deadline = time.monotonic() + within
    pending = [p.name for p in services.processes]
    while pending:
        pending = [n for n in pending if (await services.get_json(n, "/ready"))[0] != 200]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {within:.0f}s: {', '.join(pending)}")
        await asyncio.sleep(0.25)


async def _start_again(start: Callable[[], Awaitable[object]], ports: list[int], *, attempts: int = 3) -> int:
    """Start a killed process again; returns the attempts it took. A process started at once
    after its predecessor was SIGKILLed was seen now and then to "exit" before it wrote a line
    (about one start in twenty here, broker or service); the start now judges the child itself
    and keeps its pid file (`procs.exited`, `procs.keep_pid_file`), and a failure says how it
    exited. `make up` would simply start it again, and so does this."""
    for attempt in range(1, attempts + 1):
        try:
            await start()
            return attempt
        except StackError:
            if attempt == attempts:
                raise
            await asyncio.to_thread(procs.wait_ports_free, ports, timeout=30)
    raise AssertionError("unreachable")


async def kill_service(services: ServiceSet, name: str, *, within: float = 180) -> Fault:
    """SIGKILL a service (no shutdown at all: no flush, no offset commit) and start it again as
    `make up` does (the stack's start_services: spawn, then wait for /ready)."""
    process = next(p for p in services.processes if p.name == name)
    proc = process.process()
    assert proc is not None, f"{name} is not running"
    fault = Fault(f"SIGKILL {name}", time.time())
    proc.kill()
    proc.wait(10)
    fault.detail["service_starts"] = await _start_again(
        lambda: start_services([process], services.env, timeout_s=within), [process.http_port]
    )
    fault.down_s = time.time() - fault.at
    await wait_all_ready(services, within=within)
    fault.ready_s = time.time() - fault.at
    return fault


async def kill_broker(stack: TestStack, services: ServiceSet, *, within: float = 240) -> Fault:
    """SIGKILL the Kafka broker (no controlled shutdown) and start it again with the stack's code."""
    proc = stack.kafka.process()
    assert proc is not None, "Kafka is not running"
    fault = Fault("SIGKILL Kafka broker", time.time())
    proc.kill()
    proc.wait(10)
    await asyncio.to_thread(procs.wait_ports_free, list(stack.kafka.ports), timeout=30)
    fault.detail["broker_starts"] = await _start_again(stack.kafka.start, list(stack.kafka.ports))
    fault.down_s = time.time() - fault.at
    await wait_all_ready(services, within=within)
    fault.ready_s = time.time() - fault.at
    return fault


async def restart_postgres(stack: TestStack, services: ServiceSet, *, within: float = 180) -> Fault:
    """Stop PostgreSQL (fast: every session is terminated mid-transaction) and start it again."""
    fault = Fault("restart PostgreSQL", time.time())
    await asyncio.to_thread(stack.postgres.stop)
    await stack.postgres.start()
    fault.down_s = time.time() - fault.at
    await wait_all_ready(services, within=within)
    fault.ready_s = time.time() - fault.at
    return fault


async def reproduce_topic(kafka: KafkaSettings, topic: str, producer: ResilientProducer) -> Fault:
    """Mass duplicate delivery: every record of `topic` from offset zero, produced again with its
    key, value and headers (the same event ids) while the services run."""
    fault = Fault(f"replay {topic} from offset 0", time.time())
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    copies: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        full = kafka.topic(topic)
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(full, p) for p in sorted(cluster.partitions_for_topic(full) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=5000)
            for tp, records in batch.items():
                copies += [(full, r.value or b"", r.key, list(r.headers or ())) for r in records if r.offset < end[tp]]
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    for full, value, key, headers in copies:
        await producer.send_raw(full, value, key=key, headers=headers)
    fault.down_s = time.time() - fault.at
    fault.detail["records"] = len(copies)
    return fault


async def rewind_group(stack: TestStack, services: ServiceSet, name: str, *, within: float = 180) -> Fault:
    """Replay from offset zero for one consumer group: kill the service, set its committed offsets
    on every topic it consumes back to zero (as `kafka-consumer-groups --reset-offsets --to-earliest` does), start
    it again: it reads everything it ever handled once more."""
    process = next(p for p in services.processes if p.name == name)
    proc = process.process()
    assert proc is not None
    fault = Fault(f"SIGKILL {name}, rewind its group to offset 0", time.time())
    proc.kill()
    proc.wait(10)
    kafka = services.kafka
    consumer = AIOKafkaConsumer(group_id=name, enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        topics = consumed_topics()[name]
        tps = [
            TopicPartition(kafka.topic(t), p)
            for t in topics
            for p in cluster.partitions_for_topic(kafka.topic(t)) or ()
        ]
        consumer.assign(tps)  # no group join: a commit of the (then empty) group's offsets
        deadline = time.monotonic() + within
        while True:  # the dead member's session must expire before the group takes a commit
            try:
                await consumer.commit(dict.fromkeys(tps, 0))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
    finally:
        await consumer.stop()
    fault.detail["partitions"] = len(tps)
    await start_services([process], services.env, timeout_s=within)
    fault.down_s = time.time() - fault.at
    await wait_all_ready(services, within=within)
    fault.ready_s = time.time() - fault.at
    return fault


def measure_flow(fault: Fault, workload: Workload, recorder: Recorder) -> None:
    """How long after the fault a run triggered after the part was back got its outcome."""
    back = fault.at + fault.ready_s
    runs = run_triggers(recorder)
    done = recorder.completions()
    best: float | None = None
    first_completion = {
        r.value["data"]["run_id"]: r.seen_at for r in recorder.of("ScheduleRunCompleted", topic=ANALYTICS)
    }
    for sent_at, _, trigger in workload.sent:
        if sent_at < back:
            continue
        run = runs.get(trigger)
        if run is None or run not in done:
            continue
        took = first_completion[run] - fault.at
        best = took if best is None else min(best, took)
    fault.flow_s = best


def run_triggers(recorder: Recorder) -> dict[str, str]:
    """trigger event id -> run id, from the ScheduleDue events (their causation id)."""
    return {
        str(r.value.get("causationid")): r.value["data"]["run_id"] for r in recorder.of("ScheduleDue", topic=SCHEDULER)
    }


def relay_recovery(recorder: Recorder, since: float) -> dict[str, float]:
    """Seconds after `since` (time.time()) until each service's outbox relay had a record on its
    own topic again (the broker's acknowledgement time)."""
    found: dict[str, float] = {}
    for service, topic in OWN_TOPIC.items():
        after = [r.timestamp_ms / 1000 for r in recorder.of(topic=topic) if r.timestamp_ms / 1000 >= since]
        if after:
            found[service] = round(min(after) - since, 1)
    return found


# --- invariants ------------------------------------------------------------------------------


async def outbox_left(services: ServiceSet) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, url in services.database_urls.items():
        conn = await asyncpg.connect(url)
        try:
            counts[name] = int(await conn.fetchval("SELECT count(*) FROM outbox"))
        finally:
            await conn.close()
    return counts


async def wait_quiet(services: ServiceSet, recorder: Recorder, runs: int, *, within: float) -> None:
    """Until every run has its outcome, every outbox is empty and every group has read all it was sent."""
    deadline = time.monotonic() + within
    while True:
        completed = len(recorder.completions())
        left = await outbox_left(services)
        if completed >= runs and not any(left.values()) and await groups_caught_up(services.kafka):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not quiet after {within:.0f}s: {completed} of {runs} runs completed, outbox {left}")
        await asyncio.sleep(0.5)


def service_definition(name: str) -> ServiceDefinition:
    """A service's own definition (what it consumes and handles), from its package."""
    module = importlib.import_module(f"{installed_services()[name]}.bootstrap")
    definition: ServiceDefinition = module.definition()
    return definition


def consumed_topics() -> dict[str, tuple[str, ...]]:
    return {name: tuple(service_definition(name).consumes) for name in installed_services()}


async def groups_caught_up(kafka: KafkaSettings) -> bool:
    """Whether every service's group has committed the end of each topic it consumes (lag 0)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
    await admin.start()
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        for group, topics in consumed_topics().items():
            tps = [
                TopicPartition(kafka.topic(t), p)
                for t in topics
                for p in cluster.partitions_for_topic(kafka.topic(t)) or ()
            ]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in tps:
                if ends[tp] > 0 and (committed.get(tp) is None or committed[tp].offset < ends[tp]):
                    return False
        return True
    finally:
        await consumer.stop()
        await admin.close()


@dataclass
class Verdict:
    """What the invariants found: `violations` must be empty; `figures` are for the report."""

    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.violations.append(message)


def _distinct(records: Iterable[Record], *key: str) -> dict[tuple[Any, ...], set[str]]:
    out: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for r in records:
        data = r.value.get("data") or {}
        out[tuple(data.get(k) for k in key)].add(r.value["id"])
    return out


async def check_invariants(
    services: ServiceSet, recorder: Recorder, workload: Workload, *, expect_dead_letters: bool = False
) -> Verdict:
    """Every trigger made one run; every ScheduleDue ended in exactly one ScheduleRunCompleted; no
    run or platform published twice; no pending post debited twice; every ledger sums; no outbox
    row left; balances agree with what the topics say was debited and refunded."""
    v = Verdict()
    triggers = {t for _, _, t in workload.sent}
    runs_by_trigger = run_triggers(recorder)
    dues = _distinct(recorder.of("ScheduleDue", topic=SCHEDULER), "run_id")
    completions = recorder.completions()
    v.figures["triggers"] = len(triggers)
    v.figures["runs"] = len(dues)
    v.figures["outcomes"] = dict(
        Counter(
            r.value["data"]["outcome"]
            for r in {r.value["id"]: r for r in recorder.of("ScheduleRunCompleted", topic=ANALYTICS)}.values()
        )
    )
    missing = triggers - set(runs_by_trigger)
    if missing:
        v.fail(f"{len(missing)} trigger(s) made no run")
    if len({runs_by_trigger[t] for t in triggers if t in runs_by_trigger}) != len(triggers - missing):
        v.fail("one trigger made two runs")
    for (run,), ids in dues.items():
        if len(ids) != 1:
            v.fail(f"run {run}: {len(ids)} ScheduleDue events")
        ended = completions.get(run, set())
        if len(ended) != 1:
            v.fail(f"run {run}: {len(ended)} ScheduleRunCompleted (exactly one expected)")
    strays = set(completions) - {run for (run,) in dues}
    if strays:
        v.fail(f"{len(strays)} ScheduleRunCompleted for runs that were never due")
    for (run, platform), ids in _distinct(recorder.of("PostPublished", topic=PUBLISHER), "run_id", "platform").items():
        if len(ids) > 1:
            v.fail(f"run {run} published twice on {platform}")
    for (pending,), ids in _distinct(recorder.of("CreditsDebited", topic=BILLING), "pending_post_id").items():
        if len(ids) > 1:
            v.fail(f"pending post {pending} debited {len(ids)} times")
    for (run,), ids in _distinct(recorder.of("PendingPostCreated", topic=CONTENT), "run_id").items():
        if len(ids) > 1:
            v.fail(f"run {run} drafted {len(ids)} times")
    v.figures["posts"] = len({r.value["id"] for r in recorder.of("PostPublished", topic=PUBLISHER)})
    v.figures["dead_letters"] = len(recorder.dead_letters())
    if recorder.dead_letters() and not expect_dead_letters:
        kinds = Counter(
            (r.value.get("consumer"), r.value.get("event_type"), r.value.get("error_kind"))
            for r in recorder.dead_letters()
        )
        v.fail(f"dead letters in a run without bad input: {dict(kinds)}")

    await _check_databases(services, recorder, workload, v)
    return v


async def _check_databases(services: ServiceSet, recorder: Recorder, workload: Workload, v: Verdict) -> None:
    from hopcast_billing.adapters.ledger import verify_all

    urls = services.database_urls
    left = await outbox_left(services)
    if any(left.values()):
        v.fail(f"outbox rows left behind: {left}")
    billing = await asyncpg.connect(urls["billing"])
    try:
        wrong = await verify_all(billing)
        if wrong:
            v.fail(f"ledgers that do not sum to their balance: {[dict(r) for r in wrong]}")
        doubled = await billing.fetch(
            "SELECT pending_post_id, count(*) AS n FROM ledger WHERE amount < 0 AND pending_post_id IS NOT NULL "
            "GROUP BY pending_post_id, action HAVING count(*) > 1"
        )
        if doubled:
            v.fail(f"pending posts with two debit rows of one action: {[str(r['pending_post_id']) for r in doubled]}")
        balances = {
            str(r["organization_id"]): int(r["period_credits"]) + int(r["topup_credits"])
            for r in await billing.fetch("SELECT organization_id, period_credits, topup_credits FROM balances")
        }
    finally:
        await billing.close()
    # The topics and the database tell the same story of every organization's money.
    moved: dict[str, int] = defaultdict(int)
    for r in {r.value["id"]: r for r in recorder.of(topic=BILLING)}.values():
        sign = {"CreditsDebited": -1, "CreditsRefunded": 1}.get(r.value.get("type", ""), 0)
        moved[r.value["organizationid"]] += sign * int((r.value.get("data") or {}).get("amount", 0))
    for org in workload.orgs:
        expected = org.credits + moved[org.id]
        if balances.get(org.id) != expected:
            v.fail(f"organization {org.id}: balance {balances.get(org.id)}, the topics say {expected}")
    publisher = await asyncpg.connect(urls["publisher"])
    try:
        twice = await publisher.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM posts GROUP BY run_id, platform HAVING count(*) > 1) d"
        )
        if twice:
            v.fail(f"{twice} (run, platform) pairs with two posts in the publisher's database")
        v.figures["posts_in_db"] = int(await publisher.fetchval("SELECT count(*) FROM posts"))
    finally:
        await publisher.close()
    scheduler = await asyncpg.connect(urls["scheduler"])
    try:
        open_runs = await scheduler.fetchval("SELECT count(*) FROM schedule_runs WHERE outcome IS NULL")
        if open_runs:
            v.fail(f"{open_runs} runs the scheduler still sees open")
        v.figures["runs_in_db"] = int(await scheduler.fetchval("SELECT count(*) FROM schedule_runs"))
    finally:
        await scheduler.close()
    if v.figures["posts_in_db"] != v.figures["posts"]:
        v.fail(f"{v.figures['posts_in_db']} posts in the database, {v.figures['posts']} PostPublished on the topic")


def log_mentions(services: ServiceSet, needle: str) -> dict[str, int]:
    """How many lines of each service's log mention `needle`."""
    counts: dict[str, int] = {}
    for process in services.processes:
        try:
            text = process.log_file.read_text("utf-8", "replace")
        except OSError:
            continue
        counts[process.name] = sum(1 for line in text.splitlines() if needle in line)
    return counts
