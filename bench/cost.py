"""What a run costs (the capacity model's inputs, measured by e2e.py): each service's CPU and
its database backends' CPU per completed run, the transactions and bytes its database takes per
run, and the records and bytes a run puts on each Kafka topic; beside the cost of the cheapest
thing of each kind on the same servers (a raw Kafka record produced and consumed, a bare
one-row INSERT committed). Also each replica's share of the work, from its /metrics.

A phase is measured between two `Sample`s; the services' idle cost (their pollers) is measured
over quiet stretches (the least of them: on a shared machine one can catch a straggler's work)
and taken out, so what is left grows with the runs."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from common import cpu_of, create_topic, delete_topic, drop_database, fresh_database, with_database
from prometheus_client.parser import text_string_to_metric_families
from stack_stats import postgres_cpu

from hopcast_shared.acls import service_grants
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.services import ServiceProcess, ServiceSet


def record_bytes(record: ConsumerRecord[Any, Any]) -> int:
    """A record's key, value and headers as its producer sent them (the log adds some 10-20
    bytes of framing per record and about 60 per batch; no compression is configured)."""
    key = max(record.serialized_key_size, 0)
    value = max(record.serialized_value_size, 0)
    return key + value + sum(len(k.encode()) + len(v or b"") for k, v in record.headers)


class Traffic:
    """Records and their bytes seen on each topic (its name without the run's prefix), as a
    follower that reads every topic counts them; `quiet()` waits until nothing new arrives."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.records: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.last = time.perf_counter()

    def count(self, topic: str, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        name = topic.removeprefix(self.prefix)
        self.records[name] = self.records.get(name, 0) + len(records)
        self.bytes[name] = self.bytes.get(name, 0) + sum(record_bytes(r) for r in records)
        self.last = time.perf_counter()

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {topic: (self.records[topic], self.bytes[topic]) for topic in self.records}

    async def quiet(self, for_s: float = 1.5, within: float = 30.0) -> None:
        """Until no record has arrived for `for_s` (a run's last events, the ScheduleRunCompleted
        its consumers handle, and the pending statistics of PostgreSQL's backends, flushed about
        once a second, have landed), or `within` seconds."""
        deadline = time.perf_counter() + within
        while time.perf_counter() - self.last < for_s and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def readers_by_topic() -> dict[str, int]:
    """How many services' consumer groups read each topic (each reads every record once)."""
    readers: dict[str, int] = {}
    for grants in service_grants():
        for topic in grants.consumes:
            readers[topic] = readers.get(topic, 0) + 1
    return readers


@dataclass(frozen=True)
class Sample:
    """The counters a cost is the difference of, at one moment."""

    at: float
    cpu_s: dict[str, float]  # service (its replicas summed) and postgres_<service>: CPU seconds
    # service -> transactions, rows_written, bytes (the database), kept_bytes (KEPT_BYTES); content's embeddings
    db: dict[str, dict[str, int]]
    wal_bytes: int  # the server's WAL position (every database's writes)
    traffic: dict[str, tuple[int, int]]  # topic -> (records, bytes)


# The tables a database keeps (with their indexes and TOAST), not the kernel's transient ones:
# outbox rows leave once published, inbox rows after the topics' retention.
KEPT_BYTES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname NOT IN ('outbox', 'inbox')
"""


async def sample(
    services: ServiceSet, server_url: str, databases: Mapping[str, tuple[str, str]], traffic: Traffic
) -> Sample:
    cpu: dict[str, float] = {}
    for p in services.processes:
        proc = p.process()
        if proc is not None:
            times = proc.cpu_times()
            cpu[p.name] = cpu.get(p.name, 0.0) + times.user + times.system
    cpu.update(await postgres_cpu(server_url, databases))
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        rows = await conn.fetch(
            "SELECT datname, xact_commit + xact_rollback AS transactions,"
            " tup_inserted + tup_updated + tup_deleted AS rows_written, pg_database_size(datname) AS bytes"
            " FROM pg_stat_database WHERE datname = ANY($1)",
            [db for db, _ in databases.values()],
        )
        wal = int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()
    service_of = {db: name for name, (db, _) in databases.items()}
    db = {service_of[r["datname"]]: {k: int(r[k]) for k in ("transactions", "rows_written", "bytes")} for r in rows}
    for name, (_, url) in databases.items():
        conn = await asyncpg.connect(url)
        try:
            db.setdefault(name, {})["kept_bytes"] = int(await conn.fetchval(KEPT_BYTES))
            if name == "content":
                # What content keeps for the duplicate check (its dedup window's worth, purged after).
                db[name]["embeddings"] = int(await conn.fetchval("SELECT count(*) FROM content_embeddings"))
        finally:
            await conn.close()
    return Sample(time.perf_counter(), cpu, db, wal, traffic.snapshot())


def _delta(after: Mapping[str, float], before: Mapping[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


@dataclass(frozen=True)
class Baselines:
    """The cheapest thing of each kind, on the same servers in the same run."""

    raw_record_cpu_ms: float  # a raw record produced and consumed (both clients' CPU)
    raw_record_bytes: int  # the size it was measured at (a run's mean record)
    bare_commit_cpu_ms: float  # a bare one-row INSERT committed (the backend's CPU)


@dataclass(frozen=True)
class Phase:
    """From `before` to `after`, `runs` runs completed."""

    before: Sample
    after: Sample
    runs: int

    def gross_cpu_s(self, key: str) -> float:
        return _delta(self.after.cpu_s, self.before.cpu_s, key)

    def cpu_ms_per_run(self, key: str, idle: Sequence[tuple[Sample, Sample]]) -> tuple[float, float, float]:
        """(net of idle, gross) CPU ms per run of `key` (a service, postgres_<service>), and its
        idle CPU ms per s (the least over the `idle` stretches)."""
        gross = self.gross_cpu_s(key)
        idle_rate = min(_delta(b.cpu_s, a.cpu_s, key) / (b.at - a.at) for a, b in idle)
        net = max(gross - idle_rate * (self.after.at - self.before.at), 0.0)
        return 1000 * net / self.runs, 1000 * gross / self.runs, 1000 * idle_rate


def cost_rows(
    services: Iterable[str],
    idle: Sequence[tuple[Sample, Sample]],
    burst: Phase,
    baselines: Baselines,
    *,
    platforms: Sequence[str],
    at_rate: tuple[Phase, float] | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """cost_cpu_ms_per_run_<service>, cost_db_cpu_ms_per_run_<service> and kafka_bytes_per_run
    over the burst (every row also gives the CPU per run `at_rate`: runs offered at a fixed rate,
    in smaller batches; `details` go into every row)."""
    before, after, runs = burst.before, burst.after, burst.runs
    idle_s = sum(b.at - a.at for a, b in idle)
    window_s = after.at - before.at
    common = {
        "runs": runs,
        "window_s": round(window_s, 2),
        "idle_window_s": round(idle_s, 2),
        "platforms": list(platforms),
        **(details or {}),
    }

    def per_run_ms(key: str) -> tuple[float, float, float]:
        return burst.cpu_ms_per_run(key, idle)

    def steady(key: str) -> dict[str, float]:
        if at_rate is None:
            return {}
        phase, rate = at_rate
        return {f"cpu_ms_per_run_at_{rate:g}_runs_per_s": round(phase.cpu_ms_per_run(key, idle)[0], 3)}

    rows: list[dict[str, Any]] = []
    for name in services:
        net, gross, idle_ms = per_run_ms(name)
        rows.append(
            {
                "name": f"cost_cpu_ms_per_run_{name}",
                "value": round(net, 3),
                "unit": "CPU ms/run",
                "baseline_name": "raw_record_produce_consume_cpu_ms",
                "baseline_value": round(baselines.raw_record_cpu_ms, 4),
                "ratio": round(net / baselines.raw_record_cpu_ms, 1),
                "gross_cpu_ms_per_run": round(gross, 3),
                "idle_cpu_ms_per_s": round(idle_ms, 2),
                **steady(name),
                "raw_record_bytes": baselines.raw_record_bytes,
                **common,
            }
        )
    wal_per_run = (after.wal_bytes - before.wal_bytes) / runs
    for name in services:
        net, gross, idle_ms = per_run_ms(f"postgres_{name}")
        db_after, db_before = after.db.get(name, {}), before.db.get(name, {})
        rows.append(
            {
                "name": f"cost_db_cpu_ms_per_run_{name}",
                "value": round(net, 3),
                "unit": "CPU ms/run",
                "baseline_name": "bare_insert_commit_cpu_ms",
                "baseline_value": round(baselines.bare_commit_cpu_ms, 4),
                "ratio": round(net / baselines.bare_commit_cpu_ms, 1),
                "gross_cpu_ms_per_run": round(gross, 3),
                "idle_cpu_ms_per_s": round(idle_ms, 2),
                **steady(f"postgres_{name}"),
                **{f"{k}_per_run": round((db_after[k] - db_before.get(k, 0)) / runs, 2) for k in db_after},
                "wal_bytes_per_run_all_databases": round(wal_per_run),
                **common,
            }
        )
    topics = sorted(set(after.traffic) | set(before.traffic))
    moved = {
        t: [a - b for a, b in zip(after.traffic.get(t, (0, 0)), before.traffic.get(t, (0, 0)), strict=True)]
        for t in topics
    }
    records = {t: round(r / runs, 2) for t, (r, _) in moved.items() if r}
    sizes = {t: round(b / runs) for t, (r, b) in moved.items() if r}
    total = sum(b for _, b in moved.values()) / runs
    readers = readers_by_topic()
    upstream_records, upstream_bytes = moved.get("upstream.events", [0, 0])
    trigger = upstream_bytes / upstream_records if upstream_records else float("nan")
    rows.append(
        {
            "name": "kafka_bytes_per_run",
            "value": round(total),
            "unit": "B/run",
            "baseline_name": "trigger_record_bytes",
            "baseline_value": round(trigger),
            "ratio": round(total / trigger, 1),
            "bytes_per_run_by_topic": sizes,
            "records_per_run_by_topic": records,
            "records_per_run": round(sum(records.values()), 2),
            "readers_by_topic": {t: readers.get(t, 0) for t in sizes},
            "read_bytes_per_run": round(sum(b * readers.get(t, 0) for t, b in sizes.items())),
            **common,
        }
    )
    return rows


def mean_record_bytes(before: Sample, after: Sample) -> int:
    records = sum(after.traffic[t][0] - before.traffic.get(t, (0, 0))[0] for t in after.traffic)
    size = sum(after.traffic[t][1] - before.traffic.get(t, (0, 0))[1] for t in after.traffic)
    return max(1, round(size / records)) if records else 1000


async def raw_record_cpu_ms(kafka: KafkaSettings, size: int, n: int = 2000) -> float:
    """CPU (this process: producer and consumer) per record of `size` bytes produced with the
    services' producer settings (idempotent, acks=all, linger 2 ms) and consumed, through the
    same broker."""
    topic = kafka.topic(f"bench.cost.{uuid.uuid4().hex[:6]}")
    await create_topic(kafka, topic, kafka.partitions)
    producer = AIOKafkaProducer(enable_idempotence=True, linger_ms=2, **connection_kwargs(kafka))
    consumer = AIOKafkaConsumer(
        topic, enable_auto_commit=False, auto_offset_reset="earliest", **connection_kwargs(kafka)
    )
    await producer.start()
    await consumer.start()
    try:
        value = b"x" * max(size - 36, 1)
        started = time.process_time()
        futures = [await producer.send(topic, value, key=str(uuid.uuid4()).encode()) for _ in range(n)]
        await asyncio.gather(*futures)
        seen = 0
        while seen < n:
            seen += sum(len(rs) for rs in (await consumer.getmany(timeout_ms=200)).values())
        return 1000 * (time.process_time() - started) / n
    finally:
        await consumer.stop()
        await producer.stop()
        await delete_topic(kafka, topic)


async def bare_commit_cpu_ms(server_url: str, n: int = 1000) -> float:
    """A PostgreSQL backend's CPU per bare one-row INSERT in its own transaction (a logged table,
    a primary key, a 200-byte text), on a database of its own on the same server."""
    name, url = await fresh_database(server_url, "bench_cost")
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE bare (id bigint PRIMARY KEY, body text NOT NULL)")
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            body = "x" * 200
            before = cpu_of([pid]).get(pid)
            for i in range(n):
                await conn.execute("INSERT INTO bare VALUES ($1, $2)", i, body)
            after = cpu_of([pid]).get(pid)
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, name)
    if before is None or after is None:
        return float("nan")  # a server not on this machine: /proc does not show its backends
    return 1000 * (after - before) / n


# --- replicas ----------------------------------------------------------------------------------

# What tells a replica's share: content's runs handled (DRAFTED or skipped), the publisher's runs ended.
SHARE_METRIC = {"content": "hopcast_content_runs_total", "publisher": "hopcast_publisher_runs_completed_total"}
MESSAGES = "hopcast_messages_total"


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http://127.0.0.1)
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_total"):
                totals[s.name] = totals.get(s.name, 0.0) + s.value
    return totals


async def scrape(process: ServiceProcess) -> dict[str, float]:
    """Every counter of a process's /metrics, summed over its labels."""
    return await asyncio.to_thread(_scrape, process.metrics_url)


async def counters(processes: Iterable[ServiceProcess]) -> dict[str, dict[str, float]]:
    """label -> counters, for each process."""
    listed = list(processes)
    scraped = await asyncio.gather(*(scrape(p) for p in listed))
    return {p.label: c for p, c in zip(listed, scraped, strict=True)}


def shares(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]], metric: str
) -> dict[str, int]:
    """label -> how much `metric` grew on that process."""
    return {label: round(after[label].get(metric, 0.0) - before.get(label, {}).get(metric, 0.0)) for label in after}
