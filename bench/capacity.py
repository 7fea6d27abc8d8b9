"""The sizing table of bench/README.md: what a deployment needs for 1k, 10k and 100k
organizations posting 5 and 33 times a day, computed from the cost per run `make bench`
measured (bench/cost.py's rows in results/latest.json) and the assumptions below, so the
table moves with the figures. bench/run.py writes it between the sizing markers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SERVICES = ("scheduler", "content", "billing", "publisher")
SCALES: tuple[tuple[int, int], ...] = ((1_000, 5), (1_000, 33), (10_000, 5), (10_000, 33), (100_000, 5), (100_000, 33))
PARTITION_STEPS = (6, 12, 24, 48, 96, 192, 384, 768)


@dataclass(frozen=True)
class Assumptions:
    """What the table assumes beyond what was measured (bench/README.md says why)."""

    peak_to_average: float = 10.0  # the busiest minute's runs/s over the day's average
    headroom: float = 0.6  # provision so that the peak uses at most this share of the CPU
    replica_cores: float = 1.0  # a service process is one asyncio loop: at most about one core
    min_replicas: int = 2  # each service survives the loss of a process
    partition_growth: int = 2  # partitions: this many times the largest group, for growth
    replication_factor: int = 3  # each topic on three brokers (min.insync.replicas 2)
    retention_days: int = 7  # the topics' retention (KAFKA_RETENTION_MS)
    dedup_window_days: int = 30  # content keeps drafts' and posts' embeddings this long (CONTENT_DEDUP_WINDOW_DAYS)


@dataclass(frozen=True)
class Costs:
    """A run's cost, from the rows of one `make bench`."""

    cpu_ms: Mapping[str, float]
    db_cpu_ms: Mapping[str, float]
    db_transactions: Mapping[str, float]
    db_bytes: Mapping[str, float]
    embeddings: float  # content's, per run
    kafka_bytes: float
    kafka_records: float
    kafka_read_bytes: float
    platforms: int
    content_embedder: str

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> Costs | None:
        """None when the rows lack a figure the model needs (a run of some figures only)."""
        by_name = {row["name"]: row for row in rows}
        names = [f"cost_cpu_ms_per_run_{s}" for s in SERVICES] + [f"cost_db_cpu_ms_per_run_{s}" for s in SERVICES]
        if "kafka_bytes_per_run" not in by_name or any(n not in by_name for n in names):
            return None
        kafka = by_name["kafka_bytes_per_run"]
        db = {s: by_name[f"cost_db_cpu_ms_per_run_{s}"] for s in SERVICES}
        return cls(
            cpu_ms={s: _larger(by_name[f"cost_cpu_ms_per_run_{s}"]) for s in SERVICES},
            db_cpu_ms={s: _larger(row) for s, row in db.items()},
            db_transactions={s: float(row.get("transactions_per_run", 0.0)) for s, row in db.items()},
            db_bytes={s: float(row.get("kept_bytes_per_run", row.get("bytes_per_run", 0.0))) for s, row in db.items()},
            embeddings=float(db["content"].get("embeddings_per_run", 0.0)),
            kafka_bytes=float(kafka["value"]),
            kafka_records=float(kafka.get("records_per_run", 0.0)),
            kafka_read_bytes=float(kafka.get("read_bytes_per_run", 0.0)),
            platforms=len(kafka.get("platforms", [])),
            content_embedder=str(by_name["cost_cpu_ms_per_run_content"].get("content_embedder", "?")),
        )


def _larger(row: Mapping[str, Any]) -> float:
    """A cost row's CPU per run: the burst's (`value`, full batches) or the one at a fixed rate
    (smaller batches, more per run), whichever is larger."""
    at_rate = [float(v) for k, v in row.items() if k.startswith("cpu_ms_per_run_at_")]
    return max([float(row["value"]), *at_rate])


@dataclass(frozen=True)
class Sizing:
    orgs: int
    posts_per_day: int
    runs_per_day: int
    average_runs_s: float
    peak_runs_s: float
    cores: Mapping[str, float]  # each service's processes, to keep the peak under the headroom
    replicas: Mapping[str, int]
    db_cores: Mapping[str, float]
    db_transactions_s: Mapping[str, float]  # at the peak
    db_growth_gb_year: float  # every database together
    embeddings_kept: float  # content's, a dedup window's worth
    kafka_records_s: float  # produced, at the peak
    kafka_in_mb_s: float  # produced, at the peak (each byte is then written replication_factor times)
    kafka_out_mb_s: float  # read by the services' consumer groups, at the peak
    kafka_stored_gb: float  # a retention's worth, every replica
    partitions: int


def size(costs: Costs, orgs: int, posts_per_day: int, a: Assumptions) -> Sizing:
    """One row of the table: a run is one post (on `costs.platforms` platforms)."""
    runs_per_day = orgs * posts_per_day
    average = runs_per_day / 86_400
    peak = average * a.peak_to_average

    def cores(ms_per_run: float) -> float:
        return peak * ms_per_run / 1000 / a.headroom

    service_cores = {s: cores(costs.cpu_ms[s]) for s in SERVICES}
    replicas = {s: max(a.min_replicas, math.ceil(c / a.replica_cores)) for s, c in service_cores.items()}
    wanted = a.partition_growth * max(replicas.values())
    partitions = next((p for p in PARTITION_STEPS if p >= wanted), wanted)
    return Sizing(
        orgs=orgs,
        posts_per_day=posts_per_day,
        runs_per_day=runs_per_day,
        average_runs_s=average,
        peak_runs_s=peak,
        cores=service_cores,
        replicas=replicas,
        db_cores={s: cores(costs.db_cpu_ms[s]) for s in SERVICES},
        db_transactions_s={s: peak * costs.db_transactions[s] for s in SERVICES},
        db_growth_gb_year=runs_per_day * 365 * sum(costs.db_bytes.values()) / 1e9,
        embeddings_kept=runs_per_day * a.dedup_window_days * costs.embeddings,
        kafka_records_s=peak * costs.kafka_records,
        kafka_in_mb_s=peak * costs.kafka_bytes / 1e6,
        kafka_out_mb_s=peak * costs.kafka_read_bytes / 1e6,
        kafka_stored_gb=runs_per_day * a.retention_days * costs.kafka_bytes * a.replication_factor / 1e9,
        partitions=partitions,
    )


def _n(x: float) -> str:
    """A figure for people: three significant digits at most, thousands separated."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:,.{digits}f}"


def vector_units(machine: Mapping[str, Any]) -> str:
    """The CPU's vector units as a row's machine facts recorded them (bf16 units or not)."""
    return ", ".join(machine.get("cpu_vector_units") or ["vector units not recorded"])


def markdown(rows: Sequence[Mapping[str, Any]], a: Assumptions | None = None) -> str:
    """The sizing tables for `rows` (one `make bench`), or a line saying what is missing."""
    a = a or Assumptions()
    costs = Costs.from_rows(rows)
    if costs is None:
        return "_No cost rows in these results (the e2e figure was not run): no sizing table._"
    table = [size(costs, orgs, posts, a) for orgs, posts in SCALES]
    m = next((r.get("machine") or {} for r in rows if r["name"] == "kafka_bytes_per_run"), {})
    machine = (
        f"{m.get('cpu_model', '?')} ({vector_units(m)}), "
        f"{m.get('cores', '?')} cores shared by the four services, PostgreSQL and Kafka while it ran"
    )

    def scale(s: Sizing) -> str:
        return f"{s.orgs:,} x {s.posts_per_day}"

    lines = [
        f"From this run's cost per run (content's embedder `{costs.content_embedder}`, {costs.platforms} platforms "
        "a run; CPU: the larger of the burst's and the fixed rate's): "
        + ", ".join(f"{s} {_n(costs.cpu_ms[s])} ms" for s in SERVICES)
        + " of service CPU; "
        + ", ".join(f"{s} {_n(costs.db_cpu_ms[s])} ms" for s in SERVICES)
        + f" of database CPU; {_n(costs.kafka_records)} records and {_n(costs.kafka_bytes)} bytes on Kafka. "
        f"Assumed: peak-to-average {a.peak_to_average:g}, peak at most {a.headroom:.0%} of the cores provisioned, "
        f"a process at most {a.replica_cores:g} core, at least {a.min_replicas} processes a service, "
        f"partitions {a.partition_growth}x the largest group, topics replicated {a.replication_factor}x and kept "
        f"{a.retention_days} days. A core is one core of the machine measured: {machine}.",
        "",
        "| organizations x posts a day | runs a day | runs/s average | runs/s peak |",
        "|---|---|---|---|",
        *(f"| {scale(s)} | {s.runs_per_day:,} | {_n(s.average_runs_s)} | {_n(s.peak_runs_s)} |" for s in table),
        "",
        "Service processes: cores (processes) each",
        "",
        "| organizations x posts a day | " + " | ".join(SERVICES) + " | cores in all |",
        "|---|" + "---|" * (len(SERVICES) + 1),
        *(
            f"| {scale(s)} | "
            + " | ".join(f"{_n(s.cores[n])} ({s.replicas[n]})" for n in SERVICES)
            + f" | {_n(sum(s.cores.values()))} |"
            for s in table
        ),
        "",
        "Databases (one a service): cores for its backends (transactions/s at the peak); storage growth",
        "",
        "| organizations x posts a day | "
        + " | ".join(SERVICES)
        + f" | growth, GB a year (all four) | content's embeddings ({a.dedup_window_days} days) |",
        "|---|" + "---|" * (len(SERVICES) + 2),
        *(
            f"| {scale(s)} | "
            + " | ".join(f"{_n(s.db_cores[n])} ({_n(s.db_transactions_s[n])}/s)" for n in SERVICES)
            + f" | {_n(s.db_growth_gb_year)} | {_n(s.embeddings_kept)} |"
            for s in table
        ),
        "",
        "Kafka at the peak, and partitions per topic",
        "",
        "| organizations x posts a day | records/s produced | MB/s produced "
        f"(x{a.replication_factor} written) | MB/s read by the services | stored, GB ({a.retention_days} days, "
        f"x{a.replication_factor}) | partitions a topic |",
        "|---|---|---|---|---|---|",
        *(
            f"| {scale(s)} | {_n(s.kafka_records_s)} | {_n(s.kafka_in_mb_s)} | {_n(s.kafka_out_mb_s)} | "
            f"{_n(s.kafka_stored_gb)} | {s.partitions} |"
            for s in table
        ),
    ]
    return "\n".join(lines)
