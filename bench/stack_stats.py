"""What the end-to-end benchmark measures of the stack around it: percentiles, the services'
CPU seconds and memory, their PostgreSQL backends' CPU, py-spy on demand, and one fresh database
per service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
from common import cpu_of, fresh_database, with_database

from hopcast_stack.services import ServiceSet, installed_services


async def fresh_service_databases(server_url: str) -> dict[str, tuple[str, str]]:
    made = {}
    for name in installed_services():
        db_name, url = await fresh_database(server_url, f"bench_e2e_{name}")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        finally:
            await conn.close()
        made[name] = (db_name, url)
    return made


def cpu_seconds(services: ServiceSet) -> dict[str, float]:
    out = {}
    for p in services.processes:
        proc = p.process()
        if proc is not None:
            times = proc.cpu_times()
            out[p.label] = times.user + times.system
    return out


def machine_cpu_seconds(bootstrap: str) -> dict[str, float]:
    """CPU seconds of what else shares this machine with the services in a run: the Kafka
    brokers listening here on `bootstrap`'s ports (`kafka`; none when the brokers are elsewhere)
    and this process, the bench itself, which sends the triggers and reads every topic (`bench`)."""
    ports = set()
    for address in filter(None, (a.strip() for a in bootstrap.split(","))):
        host, _, port = address.rpartition(":")
        if not port.isdigit():  # no port given: Kafka's
            host, port = address, "9092"
        if host.strip("[]") in ("localhost", "127.0.0.1", "::1"):  # a broker elsewhere is not ours to count
            ports.add(int(port))
    pids = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports and c.pid is not None
    }
    mine = psutil.Process().cpu_times()
    out = {"bench": mine.user + mine.system}
    if pids:
        out["kafka"] = sum(cpu_of(sorted(pids)).values())
    return out


async def postgres_cpu(server_url: str, databases: dict[str, tuple[str, str]]) -> dict[str, float]:
    """CPU seconds of the backends serving each service's database (`postgres_<service>`; none
    when the server is not on this machine). The services' pools keep their connections, so the
    difference over a phase is what the phase cost PostgreSQL."""
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        rows = await conn.fetch(
            "SELECT datname, pid FROM pg_stat_activity WHERE datname = ANY($1)", [db for db, _ in databases.values()]
        )
    finally:
        await conn.close()
    cpu = cpu_of([r["pid"] for r in rows])
    by_db = {db: name for name, (db, _) in databases.items()}
    out: dict[str, float] = {}
    for r in rows:
        if r["pid"] in cpu:
            key = f"postgres_{by_db[r['datname']]}"
            out[key] = out.get(key, 0.0) + cpu[r["pid"]]
    return out


def rss_mb(services: ServiceSet) -> dict[str, float]:
    out = {}
    for p in services.processes:
        proc = p.process()
        if proc is not None:
            out[p.label] = proc.memory_info().rss / 2**20
    return out


def py_spy(services: ServiceSet, name: str, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    proc = next(p for p in services.processes if p.name == name).process()
    py_spy = Path(sys.executable).with_name("py-spy")
    if proc is None or not py_spy.exists():
        return None
    command = [str(py_spy), "record", "--pid", str(proc.pid), "--duration", str(int(seconds)), "--rate", "100"]
    command += ["--format", "raw", "--output", str(output), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
