"""End to end through the real stack: trigger (ScheduleTriggerRequested on upstream.events) to
ScheduleRunCompleted (analytics.events), with the four services as processes (`python -m ...`,
the e2e suite's ServiceSet: sandbox publisher, two platforms, FAST_SERVICE_ENV), beside a raw
produce -> consume round trip through the same broker.

- e2e_p50_ms / e2e_p99_ms: latency of each run at a fixed offered load (--rate, 50 runs/s, for
  --seconds), from the moment its trigger is handed to the producer to the moment its
  ScheduleRunCompleted reaches this process. Baseline: the same percentile of single messages
  produced and consumed through the broker at the same rate. The p50 row also gives each
  stage's share (stages_p50_ms, stages_p99_ms): from the arrival of a run's previous event
  (STAGES) to its own, so a queue shows where it forms.
- e2e_runs_per_s: --burst triggers sent at once (max load); runs completed divided by the time
  from the first trigger to the last completion. Baseline: --burst raw messages produced at
  once and consumed through the broker, the same way. The row also gives each service's CPU
  seconds during the burst, and its database backends' (`postgres_<service>`; what to profile:
  `--profile SERVICE` runs py-spy on it then).
- rss_mb_<service>: resident memory of each service process after the load, beside its RSS
  once ready (before any load).
- cost_cpu_ms_per_run_<service>, cost_db_cpu_ms_per_run_<service>, kafka_bytes_per_run: what a
  run of the burst cost each service, its database's backends and Kafka (bench/cost.py; the
  capacity model's inputs). Baselines: a raw record produced and consumed, a bare one-row INSERT
  committed, the trigger's own record.
- with --replicas content=2,publisher=2: after the above, a second process of each of those
  services joins (the same consumer group and database) and the burst is sent again:
  e2e_runs_per_s_two_replicas beside the one-process burst of the same run, and
  replica_share_<service>, the smallest replica's share of the runs (from each one's /metrics).
- e2e_p99_ms_at_<rate>: with --rates 50,100, the p99 of each offered load after the first.
- With --history N, the burst and the first rate's latency on clones of databases that hold N
  published runs of the same organizations (history.py: template databases built once and kept on the server):
  e2e_runs_per_s_history and e2e_p99_ms_history (run.py sets the fresh figures as their baselines).

The world: --orgs organizations, each with a brand, a subscription, a MASTODON and a BLUESKY
account linked as the brand's defaults, one autopilot schedule on both platforms (which never
fires by the clock) and enough materials of distinct text (each usable once) for its runs, all
sent through upstream.events and read by every service before the clock starts. Runs are spread
over the organizations in turn.

Usage: .venv/bin/python bench/e2e.py [--rate 50 | --rates 50,100] [--seconds 20] [--burst 1500] [--orgs 150]
       [--history N] [--bootstrap HOST:PORT] [--database-url URL] [--profile SERVICE --profile-output FILE]
       [--replicas content=2,publisher=2]
Prints one JSON row per figure. Topics (under a prefix of their own) and databases are made for
the run; the services are stopped and the databases dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import history
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from common import bench_kafka, create_topic, delete_topic, drop_database, grant_services, percentile
from cost import (
    MESSAGES,
    SHARE_METRIC,
    Baselines,
    Phase,
    Sample,
    Traffic,
    bare_commit_cpu_ms,
    cost_rows,
    counters,
    mean_record_bytes,
    raw_record_cpu_ms,
    sample,
    shares,
)
from stack_stats import cpu_seconds, fresh_service_databases, machine_cpu_seconds, postgres_cpu, py_spy, rss_mb

from hopcast_content.config import ContentSettings
from hopcast_shared.contract import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings, default_database_url
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, DLQ_TOPICS, PUBLISHER, SCHEDULER, UPSTREAM, ensure_topics
from hopcast_stack.credentials import Credentials
from hopcast_stack.harness import quiet_days
from hopcast_stack.services import FAST_SERVICE_ENV, ServiceSet, installed_services
from hopcast_stack.texts import distinct_text
from hopcast_stack.upstream import Upstream

PLATFORMS = ["MASTODON", "BLUESKY"]
# A run's events in the order they happen; the time between two is that stage's.
STAGES = ("ScheduleDue", "PendingPostCreated", "CreditsDebited", "PostPublished", "ScheduleRunCompleted")


def _text(rng: random.Random) -> str:
    # Real words of unrelated fields: distinct to a semantic embedder too (hopcast_stack.texts).
    return distinct_text(rng, sentences=4)


@dataclass
class Org:
    org: str
    brand: str
    schedule: str
    accounts: dict[str, str] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)


def _world_id(seed: int, n: int, what: str) -> str:
    """The world's ids follow from the seed, so a history built for it (history.py) is its own."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hopcast-bench-e2e/{seed}/{n}/{what}"))


def _world(orgs: int, materials_each: int, seed: int, upstream: Upstream) -> list[Org]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    world = []
    for n in range(orgs):
        o = Org(_world_id(seed, n, "organization"), _world_id(seed, n, "brand"), _world_id(seed, n, "schedule"))

        def event(type_name: str, o: Org = o, **changes: Any) -> Envelope:
            return example_event(type_name, organization_id=o.org, time=now, **changes)

        o.events += [
            event("OrganizationCreated"),
            event("BrandProfileCreated", brand_profile_id=o.brand),
            event(
                "SubscriptionActivated",
                subscription_id=_world_id(seed, n, "subscription"),
                plan="GROWTH",
                credits_total=100_000,
                period_start=(now - timedelta(days=1)).isoformat(),
                period_end=(now + timedelta(days=29)).isoformat(),
            ),
        ]
        for platform in PLATFORMS:
            account = o.accounts[platform] = _world_id(seed, n, f"account/{platform}")
            o.events += [
                event(
                    "SocialAccountConnected",
                    social_account_id=account,
                    platform=platform,
                    handle=f"@bench-{platform.lower()}",
                    access_token=upstream.encrypt_token(
                        f"token-{uuid.uuid4().hex}", organization_id=o.org, social_account_id=account
                    ),
                    refresh_token=None,
                    token_expires_at=(now + timedelta(days=30)).isoformat(),
                ),
                event("BrandAccountLinked", brand_profile_id=o.brand, social_account_id=account, is_default=True),
            ]
        o.events += [
            event(
                "MaterialSubmitted",
                material_id=_world_id(seed, n, f"material/{m}"),
                brand_profile_id=o.brand,
                title=None,
                body=_text(rng),
                content_pillar=None,
                max_uses=1,
            )
            for m in range(materials_each)
        ]
        o.events.append(
            event(
                "ScheduleCreated",
                schedule_id=o.schedule,
                brand_profile_id=o.brand,
                timezone="UTC",
                times=["03:00"],
                days_of_week=quiet_days(),
                platforms=PLATFORMS,
                generation_mode="autopilot",
            )
        )
        world.append(o)
    return world


class Runs:
    """Follows scheduler.events (ScheduleDue: which trigger made which run) and analytics.events
    (ScheduleRunCompleted), stamping each arrival with this process's clock; and the run's events
    on the topics between (STAGES), to tell where a run's time goes. It counts the records and
    bytes of every topic (`traffic`, upstream and dead letters included)."""

    FOLLOWED = (SCHEDULER, CONTENT, BILLING, PUBLISHER, ANALYTICS)

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.traffic = Traffic(kafka.topic_prefix)
        self.run_of_trigger: dict[str, str] = {}
        self.completed: dict[str, tuple[float, str]] = {}  # run -> (arrival, outcome)
        self.stages: dict[str, dict[str, float]] = {}  # run -> event type -> first arrival
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()

    async def follow(self) -> None:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(self.kafka))
        await consumer.start()
        try:
            tps = []
            for name in (UPSTREAM, *self.FOLLOWED, *DLQ_TOPICS):
                topic = self.kafka.topic(name)
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = consumer.partitions_for_topic(topic) or set()
                tps += [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            self.ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.perf_counter()
                followed = {self.kafka.topic(name) for name in self.FOLLOWED}
                for tp, records in batches.items():
                    self.traffic.count(tp.topic, records)
                    if tp.topic not in followed:
                        continue
                    for record in records:
                        value = json.loads(record.value or b"{}")
                        kind, data = value.get("type"), value.get("data") or {}
                        if kind in STAGES and data.get("run_id"):
                            self.stages.setdefault(data["run_id"], {}).setdefault(kind, now)
                        if kind == "ScheduleDue":
                            self.run_of_trigger[value["causationid"]] = data["run_id"]
                        elif kind == "ScheduleRunCompleted" and data["run_id"] not in self.completed:
                            self.completed[data["run_id"]] = (now, data["outcome"])
                if batches:
                    self.changed.set()
        finally:
            await consumer.stop()

    async def wait_for(self, triggers: dict[str, float], within: float) -> dict[str, tuple[float, float, str]]:
        """trigger id -> (sent, completed, outcome) for every trigger, waiting up to `within` seconds."""
        deadline = time.perf_counter() + within
        while True:
            done = {}
            for trigger, sent in triggers.items():
                run = self.run_of_trigger.get(trigger)
                if run is not None and run in self.completed:
                    done[trigger] = (sent, *self.completed[run])
            if len(done) == len(triggers) or time.perf_counter() > deadline:
                return done
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=1.0)

    def stage_percentiles(self, sent: dict[str, float], p: float) -> dict[str, float]:
        """Each stage's share of the runs' latency: the p-th percentile of the time from the
        arrival of the previous stage's event (the trigger's sending, for the first) to its own."""
        gaps: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for trigger, at in sent.items():
            seen = self.stages.get(self.run_of_trigger.get(trigger, ""), {})
            previous = at
            for stage in STAGES:
                if stage not in seen:
                    break
                gaps[stage].append(1000 * (seen[stage] - previous))
                previous = seen[stage]
        return {stage: round(percentile(values, p), 1) for stage, values in gaps.items() if values}


async def _trigger(upstream: Upstream, o: Org) -> tuple[str, float]:
    event = example_event(
        "ScheduleTriggerRequested", organization_id=o.org, time=datetime.now(UTC), schedule_id=o.schedule
    )
    sent = time.perf_counter()
    await upstream.send(event)
    return str(event.id), sent


async def _at_rate(upstream: Upstream, orgs: list[Org], turn: int, rate: float, n: int) -> dict[str, float]:
    """n triggers at `rate` per second; each one's clock starts when it is handed to the producer."""
    started = time.perf_counter()
    sent: dict[str, float] = {}
    pending = []

    async def one(o: Org) -> None:
        trigger, at = await _trigger(upstream, o)
        sent[trigger] = at

    for i in range(n):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        pending.append(asyncio.create_task(one(orgs[(turn + i) % len(orgs)])))
    await asyncio.gather(*pending)
    return sent


async def _burst(upstream: Upstream, orgs: list[Org], turn: int, n: int) -> tuple[dict[str, float], float]:
    events = [
        example_event("ScheduleTriggerRequested", organization_id=o.org, time=datetime.now(UTC), schedule_id=o.schedule)
        for o in (orgs[(turn + i) % len(orgs)] for i in range(n))
    ]
    started = time.perf_counter()
    await upstream.send_all(events)
    return {str(e.id): started for e in events}, started


async def _broker_baselines(kafka: KafkaSettings, rate: float, n_rate: int, n_burst: int) -> dict[str, float]:
    """A raw produce -> consume round trip through the same broker: latencies at `rate`, and the
    rate of a burst."""
    topic = kafka.topic(f"bench.roundtrip.{uuid.uuid4().hex[:6]}")
    await create_topic(kafka, topic, kafka.partitions)
    producer = AIOKafkaProducer(enable_idempotence=True, **connection_kwargs(kafka))
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up", key=b"0")
    consumer = AIOKafkaConsumer(topic, enable_auto_commit=False, auto_offset_reset="latest", **connection_kwargs(kafka))
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=500)
        for tp in consumer.assignment():
            await consumer.position(tp)
        arrivals: dict[bytes, float] = {}

        async def read(until: int) -> None:
            while len(arrivals) < until:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.perf_counter()
                    for r in records:
                        arrivals[r.value or b""] = now

        reader = asyncio.create_task(read(n_rate + n_burst))
        sent: dict[bytes, float] = {}
        started = time.perf_counter()
        for i in range(n_rate):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            key = f"r{i}".encode()
            sent[key] = time.perf_counter()
            await producer.send_and_wait(topic, key, key=key)
        while len(arrivals) < n_rate:  # noqa: ASYNC110 (a bench loop, polled)
            await asyncio.sleep(0.01)
        latencies = [1000 * (arrivals[k] - t) for k, t in sent.items()]
        burst_started = time.perf_counter()
        futures = [await producer.send(topic, f"b{i}".encode(), key=f"b{i}".encode()) for i in range(n_burst)]
        await asyncio.gather(*futures)
        await asyncio.wait_for(reader, timeout=120)
        burst_s = max(arrivals.values()) - burst_started
    finally:
        await consumer.stop()
        await producer.stop()
        await delete_topic(kafka, topic)
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "burst_per_s": n_burst / burst_s,
    }


@dataclass
class RatePhase:
    """Runs at a fixed offered load: each trigger's latency to its run's ScheduleRunCompleted."""

    rate: float
    runs: int
    done: dict[str, tuple[float, float, str]]
    stages: dict[str, dict[str, float]]

    @property
    def latencies(self) -> list[float]:
        return [1000 * (end - start) for start, end, _ in self.done.values()]


async def _rate_phase(upstream: Upstream, runs: Runs, world: list[Org], turn: int, rate: float, n: int) -> RatePhase:
    sent = await _at_rate(upstream, world, turn, rate, n)
    done = await runs.wait_for(sent, within=120 + n / 5)
    stages = {f"stages_p{p}_ms": runs.stage_percentiles(sent, p) for p in (50, 99)}
    return RatePhase(rate, n, done, stages)


async def _history_databases(
    args: argparse.Namespace, base: KafkaSettings, credentials: Credentials | None
) -> tuple[dict[str, tuple[str, str]], str, dict[str, Any]]:
    """A clone of each service's template with history (history.py; built first if the server
    has none for this world and size): the databases, their token key, and what it took."""
    kafka = base.model_copy(update={"topic_prefix": f"bh{uuid.uuid4().hex[:8]}.", "partitions": args.partitions})

    async def set_up(services: ServiceSet, upstream: Upstream) -> None:
        await upstream.send_all(
            e for o in _world(args.orgs, 0, args.seed, upstream) for e in o.events if e.type != "MaterialSubmitted"
        )
        await upstream.wait_consumed(within=300)

    found = await history.ensure_templates(
        args.database_url,
        kafka,
        credentials,
        history.Spec(args.history, args.orgs, args.seed, tuple(PLATFORMS)),
        _world_ids(args.orgs, args.seed),
        set_up,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    databases, clone_s = await history.clone(args.database_url, found)
    try:
        purged, purge_s = await history.purge_clones(databases)
        await history.keep_schedules_quiet(databases["scheduler"][1], quiet_days())
    except BaseException:
        for name, _ in databases.values():
            await drop_database(args.database_url, name)
        raise
    facts = {
        **found.facts,
        "built_at": found.built_at.isoformat(),
        "templates": sorted(found.names.values()),
        "clone_s": round(clone_s, 2),
        "clone_purged": purged,
        "clone_purge_s": round(purge_s, 2),
    }
    return databases, found.token_keys, facts


def _world_ids(orgs: int, seed: int) -> list[Org]:
    return [
        Org(
            _world_id(seed, n, "organization"),
            _world_id(seed, n, "brand"),
            _world_id(seed, n, "schedule"),
            {platform: _world_id(seed, n, f"account/{platform}") for platform in PLATFORMS},
        )
        for n in range(orgs)
    ]


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base, credentials = bench_kafka(args.bootstrap)
    kafka = base.model_copy(update={"topic_prefix": f"b{uuid.uuid4().hex[:8]}.", "partitions": args.partitions})
    await ensure_topics(kafka)
    await grant_services(kafka, credentials)
    extra_env = dict(FAST_SERVICE_ENV)
    history_facts: dict[str, Any] = {}
    if args.history:
        databases, extra_env["TOKEN_KEYS"], history_facts = await _history_databases(args, base, credentials)
    else:
        databases = await fresh_service_databases(args.database_url)
    state_dir = Path(tempfile.mkdtemp(prefix="hopcast-bench-e2e-"))
    services = ServiceSet(
        kafka=kafka,
        database_urls={name: url for name, (_, url) in databases.items()},
        state_dir=state_dir,
        extra_env=extra_env,
        credentials=credentials,
    )
    rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
    n_rates = [int(rate * args.seconds) for rate in rates]
    warm = min(20, n_rates[0])
    replicas = _replicas(args.replicas)
    # With replicas: up to REPLICA_WARM_ROUNDS runs per organization, then the burst again.
    extra = (REPLICA_WARM_ROUNDS * args.orgs + args.burst) if replicas else 0
    per_org = (warm + sum(n_rates) + args.burst + extra) // args.orgs + 3
    runs = Runs(kafka)
    follower: asyncio.Task[None] | None = None
    try:
        await services.start()
        rss_ready = rss_mb(services)
        follower = asyncio.create_task(runs.follow())
        await asyncio.wait_for(runs.ready.wait(), timeout=30)
        async with Upstream(services.kafka_as("upstream"), keyring=services.keyring, observer=kafka) as upstream:
            world = _world(args.orgs, per_org, args.seed, upstream)
            seeded = time.perf_counter()
            # On a clone with history the set-up is in the databases already: only the materials go.
            await upstream.send_all(
                e for o in world for e in o.events if not args.history or e.type == "MaterialSubmitted"
            )
            await upstream.wait_consumed(within=300)
            seed_s = time.perf_counter() - seeded

            # Warm-up (not measured): every code path and connection pool in use once.
            await runs.wait_for(await _at_rate(upstream, world, 0, 10, warm), within=60)

            # The first rate's cost per run is taken between two idle stretches (bench/cost.py).
            idle_early = await _idle(services, args.database_url, databases, runs.traffic)
            phases, turn = [], warm
            for rate, n in zip(rates, n_rates, strict=True):
                phases.append(await _rate_phase(upstream, runs, world, turn, rate, n))
                turn += n
                if len(phases) == 1:
                    idle_late = await _idle(services, args.database_url, databases, runs.traffic)
            await runs.traffic.quiet()
            cost_before = await sample(services, args.database_url, databases, runs.traffic)
            cpu_before = {
                **cpu_seconds(services),
                **await postgres_cpu(args.database_url, databases),
                **machine_cpu_seconds(args.bootstrap),
            }
            profiler = None
            if args.profile:
                profiler = py_spy(services, args.profile, max(10, args.burst / 20), args.profile_output)
            burst_sent, burst_started = await _burst(upstream, world, turn, args.burst)
            burst_done = await runs.wait_for(burst_sent, within=120 + args.burst / 5)
            finished = max((end for _, end, _ in burst_done.values()), default=time.perf_counter())
            burst_s = finished - burst_started
            cpu_after = {
                **cpu_seconds(services),
                **await postgres_cpu(args.database_url, databases),
                **machine_cpu_seconds(args.bootstrap),
            }
            cpu = {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in cpu_after.items()}
            if profiler is not None:
                profiler.wait(timeout=120)
            completions = sorted(end - burst_started for _, end, _ in burst_done.values())
            outcomes_burst = [outcome for _, _, outcome in burst_done.values()]
            await runs.traffic.quiet()
            cost_after = await sample(services, args.database_url, databases, runs.traffic)
        rss = rss_mb(services)
        replica_rows: list[dict[str, Any]] = []
        if replicas:
            one_process = (len(burst_done) / burst_s, Phase(cost_before, cost_after, len(burst_done)))
            replica_rows = await _replica_phase(
                services, runs, world, turn + args.burst, args, databases, replicas, one_process
            )
        baselines = [
            await _broker_baselines(kafka, rate, min(n, 500), args.burst)
            for rate, n in zip(rates, n_rates, strict=True)
        ]
        record_size = mean_record_bytes(cost_before, cost_after)
        cost_baselines = Baselines(
            await raw_record_cpu_ms(kafka, record_size), record_size, await bare_commit_cpu_ms(args.database_url)
        )
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        services.stop()
        for db_name, _ in databases.values():
            with contextlib.suppress(Exception):
                await drop_database(args.database_url, db_name)
        if not os.environ.get("HOPCAST_KEEP_BENCH_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)

    common = {"orgs": args.orgs, "platforms": PLATFORMS, "partitions": args.partitions, "seed_s": round(seed_s, 1)}
    if args.history:
        common["history"] = history_facts
    burst_row = {
        "name": "e2e_runs_per_s_history" if args.history else "e2e_runs_per_s",
        "value": round(len(burst_done) / burst_s, 1),
        "unit": "runs/s",
        "baseline_name": "raw_produce_consume_per_s",
        "baseline_value": round(baselines[0]["burst_per_s"], 1),
        "ratio": round(len(burst_done) / burst_s / baselines[0]["burst_per_s"], 4),
        "runs": args.burst,
        "completed": len(burst_done),
        "seconds": round(burst_s, 2),
        "outcomes": dict(sorted(_count(outcomes_burst).items())),
        "cpu_s_during_burst": cpu,
        "completions_s": [round(x, 3) for x in completions],
        **common,
    }
    rows = [burst_row]
    for i, (phase, baseline) in enumerate(zip(phases, baselines, strict=True)):
        rows += _latency_rows(phase, baseline, common, first=i == 0, history=bool(args.history))
    if not args.history:  # what a run costs, and memory: on fresh databases only (one row of each name)
        rows += _rss_rows(rss, rss_ready, warm + sum(n_rates) + args.burst)
        rows += cost_rows(
            list(installed_services()),
            [idle_early, idle_late],
            Phase(cost_before, cost_after, len(burst_done)),
            cost_baselines,
            platforms=PLATFORMS,
            at_rate=(Phase(idle_early[1], idle_late[0], len(phases[0].done)), phases[0].rate),
            details={"content_embedder": ContentSettings().embedder},
        )
    rows += replica_rows
    return rows


def _latency_rows(
    phase: RatePhase, baseline: dict[str, float], common: dict[str, Any], *, first: bool, history: bool
) -> list[dict[str, Any]]:
    """e2e_p50_ms and e2e_p99_ms at the first rate; e2e_p99_ms_at_<rate> at the others (with
    `_history` on databases with history)."""
    latencies = phase.latencies
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    details = {
        "offered_runs_per_s": phase.rate,
        "runs": phase.runs,
        "completed": len(phase.done),
        "outcomes": dict(sorted(_count([outcome for _, _, outcome in phase.done.values()]).items())),
        **phase.stages,
        **common,
    }
    suffix = ("" if first else f"_at_{phase.rate:g}") + ("_history" if history else "")
    p99_row = {
        "name": f"e2e_p99_ms{suffix}",
        "value": round(p99, 1),
        "unit": "ms",
        "baseline_name": "raw_produce_consume_p99_ms",
        "baseline_value": round(baseline["p99_ms"], 2),
        "ratio": round(p99 / baseline["p99_ms"], 2),
        "p50_ms": round(p50, 1),
        **details,
    }
    if not first or history:
        return [p99_row]
    p50_row = {
        "name": "e2e_p50_ms",
        "value": round(p50, 1),
        "unit": "ms",
        "baseline_name": "raw_produce_consume_p50_ms",
        "baseline_value": round(baseline["p50_ms"], 2),
        "ratio": round(p50 / baseline["p50_ms"], 2),
        **details,
        "latencies_ms": [round(x, 1) for x in sorted(latencies)],
    }
    return [p50_row, p99_row]


def _rss_rows(rss: dict[str, float], rss_ready: dict[str, float], after_runs: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"rss_mb_{name}",
            "value": round(mb, 1),
            "unit": "MB",
            "baseline_name": "rss_mb_when_ready",
            "baseline_value": round(rss_ready.get(name, float("nan")), 1),
            "ratio": round(mb / rss_ready[name], 3) if rss_ready.get(name) else None,
            "after_runs": after_runs,
        }
        for name, mb in rss.items()
    ]


def _count(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


async def _idle(
    services: ServiceSet, server_url: str, databases: dict[str, tuple[str, str]], traffic: Traffic, seconds: float = 2.0
) -> tuple[Sample, Sample]:
    """Two samples `seconds` apart once nothing moves on Kafka: what the services and their
    databases spend with no run in flight (pollers, relays), taken out of a run's cost."""
    await traffic.quiet()
    first = await sample(services, server_url, databases, traffic)
    await asyncio.sleep(seconds)
    return first, await sample(services, server_url, databases, traffic)


REPLICA_WARM_ROUNDS = 3
COUNTS = {2: "two", 3: "three", 4: "four"}


def _replicas(spec: str) -> dict[str, int]:
    """ "content=2,publisher=2" -> {"content": 2, "publisher": 2}."""
    out = {}
    for part in filter(None, spec.split(",")):
        name, _, count = part.partition("=")
        if name not in installed_services() or not count.isdigit() or int(count) < 2:
            raise SystemExit(f"--replicas: expected SERVICE=N (N >= 2) for an installed service, got {part!r}")
        out[name] = int(count)
    return out


async def _replica_phase(
    services: ServiceSet,
    runs: Runs,
    world: list[Org],
    turn: int,
    args: argparse.Namespace,
    databases: dict[str, tuple[str, str]],
    replicas: dict[str, int],
    one_process: tuple[float, Phase],
) -> list[dict[str, Any]]:
    """More processes of some services (each joins its service's consumer group: Kafka moves
    part of the group's partitions to it), then the burst again: the runs per second beside
    `one_process`'s (the burst's runs/s and cost with one process each), and how the runs were
    shared between each service's processes."""
    clock = time.perf_counter()
    took: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal clock
        took[step], clock = round(time.perf_counter() - clock, 1), time.perf_counter()

    added = await services.add_replicas({name: n - 1 for name, n in replicas.items()})
    ours = [p for p in services.processes if p.name in replicas]
    lap("start_s")
    async with Upstream(services.kafka_as("upstream"), keyring=services.keyring, observer=services.kafka) as upstream:
        # A group shares its partitions once every member has rejoined (a few seconds): rounds of
        # one run per organization (their keys spread over the partitions) until each new process
        # has handled some of them.
        started = await counters(added)
        rounds, all_handling = 0, False
        while rounds < REPLICA_WARM_ROUNDS and not all_handling:
            await runs.wait_for(await _at_rate(upstream, world, turn, 50, len(world)), within=60)
            turn, rounds = turn + len(world), rounds + 1
            now = await counters(added)
            all_handling = all(now[p.label].get(MESSAGES, 0) > started[p.label].get(MESSAGES, 0) for p in added)
        await runs.traffic.quiet()
        lap("warm_up_s")
        counts_before = await counters(ours)
        cpu_before = cpu_seconds(services)
        before = await sample(services, args.database_url, databases, runs.traffic)
        sent, burst_started = await _burst(upstream, world, turn, args.burst)
        done = await runs.wait_for(sent, within=120 + args.burst / 5)
        finished = max((end for _, end, _ in done.values()), default=time.perf_counter())
        await runs.traffic.quiet()
        after = await sample(services, args.database_url, databases, runs.traffic)
        cpu_after = cpu_seconds(services)
        counts_after = await counters(ours)
        lap("burst_s")
    n = max(len(done), 1)
    by_service = {
        name: shares(counts_before, {p.label: counts_after[p.label] for p in ours if p.name == name}, metric)
        for name, metric in SHARE_METRIC.items()
        if name in replicas
    }
    messages = {
        name: shares(counts_before, {p.label: counts_after[p.label] for p in ours if p.name == name}, MESSAGES)
        for name in replicas
    }
    rate = len(done) / (finished - burst_started)
    one_rate, one_phase = one_process
    count = max(replicas.values())
    common = {
        "replicas": replicas,
        "runs": args.burst,
        "completed": len(done),
        "warm_up_rounds": rounds,
        "every_replica_handled_warm_up": all_handling,
        "phase_s": took,
    }
    rows: list[dict[str, Any]] = [
        {
            "name": f"e2e_runs_per_s_{COUNTS.get(count, count)}_replicas",
            "value": round(rate, 1),
            "unit": "runs/s",
            "baseline_name": "e2e_runs_per_s_one_replica",
            "baseline_value": round(one_rate, 1),
            "ratio": round(rate / one_rate, 3),
            "seconds": round(finished - burst_started, 2),
            "outcomes": dict(sorted(_count([o for _, _, o in done.values()]).items())),
            "runs_by_replica": by_service,
            "messages_by_replica": messages,
            "gross_cpu_ms_per_run": {
                name: round(1000 * (after.cpu_s.get(name, 0.0) - before.cpu_s.get(name, 0.0)) / n, 3)
                for name in replicas
            },
            "gross_cpu_ms_per_run_one_replica": {
                name: round(1000 * one_phase.gross_cpu_s(name) / one_phase.runs, 3) for name in replicas
            },
            "cpu_s_by_process": {label: round(cpu_after[label] - cpu_before.get(label, 0.0), 2) for label in cpu_after},
            **common,
        }
    ]
    for name, counted in by_service.items():
        total = sum(counted.values())
        smallest = min(counted.values()) / total if total else 0.0
        even = 1 / len(counted)
        rows.append(
            {
                "name": f"replica_share_{name}",
                "value": round(smallest, 3),
                "unit": "share of runs",
                "baseline_name": "even_share",
                "baseline_value": round(even, 3),
                "ratio": round(smallest / even, 3),
                "runs_by_replica": counted,
                "counted": total,
                "metric": SHARE_METRIC[name],
                **common,
            }
        )
    return rows


def _count(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="offered load for the latency figures (runs/s)")
    parser.add_argument(
        "--replicas", default="", help="SERVICE=N,...: then the burst again with N processes of each (bench/cost.py)"
    )
    parser.add_argument(
        "--rates",
        default="",
        help="offered loads one after the other, e.g. 50,100: the first gives e2e_p50_ms/e2e_p99_ms, each other "
        "e2e_p99_ms_at_<rate> (default: --rate alone)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each offered load lasts")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="runs of history in the databases (history.py: template databases, built once, cloned per run); "
        "the rows are then e2e_runs_per_s_history and e2e_p99_ms_history",
    )
    parser.add_argument("--burst", type=int, default=1500, help="runs triggered at once for e2e_runs_per_s")
    parser.add_argument("--orgs", type=int, default=150)
    parser.add_argument("--partitions", type=int, default=KafkaSettings.model_fields["partitions"].default)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bootstrap", default=KafkaSettings().bootstrap_servers)
    parser.add_argument(
        "--database-url", default=os.environ.get("SCHEDULER_DATABASE_URL", default_database_url("scheduler"))
    )
    parser.add_argument("--profile", choices=list(installed_services()), help="py-spy this service during the burst")
    parser.add_argument("--profile-output", type=Path, default=Path("e2e-profile.txt"))
    args = parser.parse_args()
    for row in asyncio.run(run(args)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
