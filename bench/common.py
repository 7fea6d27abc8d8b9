"""What every benchmark needs: a fresh database on a given PostgreSQL server, dropped afterwards;
a topic of its own on a given Kafka, deleted afterwards; a meter of a phase's wall and CPU time."""

from __future__ import annotations

import gc
import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hopcast_shared.acls import acl_table, apply_acls
from hopcast_shared.db import Database
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.credentials import Credentials

# The broker's credentials file (a local broker with SCRAM and ACLs: bench/run.py sets it): the
# scripts then connect as `admin`, and the services they start each as its own principal.
CREDENTIALS_ENV = "HOPCAST_KAFKA_CREDENTIALS"


def bench_kafka(bootstrap: str) -> tuple[KafkaSettings, Credentials | None]:
    """The scripts' own client settings for the Kafka at `bootstrap`, and its credentials if any."""
    base = KafkaSettings(bootstrap_servers=bootstrap)
    path = os.environ.get(CREDENTIALS_ENV)
    if not path:
        return base, None
    credentials = Credentials.load_or_create(Path(path))
    return credentials.client_settings(base, "admin"), credentials


async def grant_services(kafka: KafkaSettings, credentials: Credentials | None) -> None:
    """The principals' ACLs for the topics under `kafka`'s prefix (where the broker has ACLs)."""
    if credentials is not None:
        await apply_acls(kafka, acl_table(kafka.topic_prefix))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def fresh_database(server_url: str, prefix: str) -> tuple[str, str]:
    """(name, url) of a new empty database `<prefix>_<random>` on the server of `server_url`."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def create_topic(kafka: KafkaSettings, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def delete_topic(kafka: KafkaSettings, name: str) -> None:
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


_TICK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between the closest ranks; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def cpu_of(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process that /proc shows (a remote server's show none)."""
    cpu: dict[int, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return cpu


class Meter:
    """Wall time of a phase, and the CPU time it took: this process's, and the database
    backends' of the bench database (from /proc, when the server runs on this machine; the
    machine is shared, so CPU per post is the steadier figure of what the code costs)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _backends(self) -> dict[int, float]:
        pids = await self._db.pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return cpu_of([r["pid"] for r in pids])

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_started

    async def __aenter__(self) -> Meter:
        self.gc_s, self._gc_started = 0.0, 0.0
        gc.callbacks.append(self._on_gc)
        self._pg = await self._backends()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.python_cpu_s = time.process_time() - self._cpu
        gc.callbacks.remove(self._on_gc)
        after = await self._backends()
        self.postgres_cpu_s = sum(t - self._pg.get(pid, 0.0) for pid, t in after.items()) if after else None

    def per_item(self, items: int, item: str) -> dict[str, Any]:
        """CPU per item (`python_cpu_us_per_<item>`, of which `python_gc_...`, and
        `postgres_cpu_us_per_<item>`): steadier than wall time on a shared machine."""
        return {
            f"python_cpu_us_per_{item}": round(1e6 * self.python_cpu_s / items),
            f"python_gc_us_per_{item}": round(1e6 * self.gc_s / items),
            f"postgres_cpu_us_per_{item}": None
            if self.postgres_cpu_s is None
            else round(1e6 * self.postgres_cpu_s / items),
        }

    def per_post(self, posts: int) -> dict[str, Any]:
        return self.per_item(posts, "post")
