"""The local stack as one thing: Kafka and PostgreSQL (the infrastructure) and the installed services,
brought up idempotently (whatever is not running starts; what runs is left alone) and taken down
in reverse order. The CLI (`hopcast stack ...`) is a thin layer over this class."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hopcast_shared.acls import PRINCIPALS, UPSTREAM_PRINCIPAL, acl_table, apply_acls
from hopcast_shared.settings import SERVICES, KafkaSettings
from hopcast_stack import procs
from hopcast_stack.config import StackSettings
from hopcast_stack.credentials import Credentials
from hopcast_stack.errors import StackError
from hopcast_stack.kafka import KafkaServer
from hopcast_stack.kafka_cluster import KafkaCluster
from hopcast_stack.postgres import PostgresServer
from hopcast_stack.services import (
    ServiceProcess,
    current_env,
    installed_services,
    kafka_env,
    local_auth_env,
    service_env,
    start_services,
)

# What `make env` prints of a principal's client settings (the names the services read).
CLIENT_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPIC_PREFIX",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
)


@dataclass(frozen=True)
class PartStatus:
    """What `hopcast stack status` shows for one part."""

    name: str
    running: bool
    pid: int | None
    address: str
    log: str
    note: str = ""


@dataclass
class StartReport:
    """What an `up` did, part by part: started now (with the seconds it took) or already running."""

    started: dict[str, float] = field(default_factory=dict)
    already_running: list[str] = field(default_factory=list)
    topics_created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def parts(self) -> list[tuple[str, float | None]]:
        """(part, seconds to start, or None when it was already running), in the stack's order."""
        order = {name: i for i, name in enumerate(("kafka", "postgres", *SERVICES))}
        entries: list[tuple[str, float | None]] = [*self.started.items(), *((n, None) for n in self.already_running)]
        return sorted(entries, key=lambda entry: order.get(entry[0], len(order)))


async def _timed(name: str, start: Awaitable[bool], report: StartReport) -> None:
    began = time.monotonic()
    if await start:
        report.started[name] = time.monotonic() - began
    else:
        report.already_running.append(name)


async def _gather_or_raise(*aws: Awaitable[None]) -> None:
    """Run concurrently; when some fail, raise one StackError naming every failure (each with its log)."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, StackError):
            raise error
    if errors:
        raise StackError("\n\n".join(str(e) for e in errors))


def _stop_concurrently(parts: dict[str, Callable[[], bool]]) -> list[str]:
    """Stop independent parts at once (each waits for its own clean shutdown); returns those that ran.
    Every part is asked to stop even when another fails; the first failure is raised after."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(parts))) as pool:
        futures = {name: pool.submit(stop) for name, stop in parts.items()}
    for future in futures.values():
        error = future.exception()
        if error is not None:
            raise error
    return [name for name, f in futures.items() if f.result()]


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        # An external Kafka (KAFKA_BOOTSTRAP_SERVERS elsewhere) is not ours to start or stop, and
        # its credentials come from the KAFKA_* variables; ours has a principal per role.
        # HOPCAST_KAFKA_BROKERS=3 runs a three-node cluster instead of the one broker.
        self.kafka: KafkaServer | KafkaCluster | None = None
        if not settings.kafka_external:
            cluster = settings.kafka_brokers > 1
            self.kafka = KafkaCluster.from_settings(settings) if cluster else KafkaServer.from_settings(settings)
        self.credentials: Credentials | None = self.kafka.credentials if self.kafka else None
        # The stack's own client (topics, ACLs, the live view, the demo's fence): the admin.
        self.kafka_settings: KafkaSettings = self.kafka_as("admin")
        self.postgres = PostgresServer.from_settings(settings)
        self.services = [
            ServiceProcess(name, module, settings.http_port(name), self.state_dir)
            for name, module in installed_services().items()
        ]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state folder (two terminals, or make up during make down)."""
        with procs.file_lock(self.state_dir / "run" / "stack.lock"):
            yield

    # Connection settings -----------------------------------------------------------------------

    def kafka_as(self, principal: str) -> KafkaSettings:
        """The clients' settings of `principal` (one of hopcast_shared.acls.PRINCIPALS) on our broker;
        an external broker's settings as the KAFKA_* variables give them."""
        if self.credentials is None:
            return self.settings.kafka
        if principal not in PRINCIPALS:
            raise StackError(f"no Kafka principal {principal!r}: one of {', '.join(PRINCIPALS)}")
        kafka = self.settings.kafka
        if isinstance(self.kafka, KafkaCluster):  # every node to bootstrap from, topics replicated 3 times
            layout = {"bootstrap_servers": self.kafka.bootstrap, "replication_factor": len(self.kafka.nodes)}
            kafka = kafka.model_copy(update=layout)
        return self.credentials.client_settings(kafka, principal)

    def env(self, role: str = UPSTREAM_PRINCIPAL) -> dict[str, str]:
        """What a client of this stack sets: `role`'s Kafka client settings (the upstream producer's
        by default) and each service's database URL."""
        kafka = kafka_env(self.kafka_as(role))
        values = {key: kafka[key] for key in CLIENT_VARIABLES if kafka.get(key)}
        for name in SERVICES:
            values[f"{name.upper()}_DATABASE_URL"] = self.settings.database_url(name)
        return values

    def not_installed(self) -> list[str]:
        installed = {s.name for s in self.services}
        return [name for name in SERVICES if name not in installed]

    # Infrastructure ----------------------------------------------------------------------------

    async def infra_up(self) -> StartReport:
        """Kafka and PostgreSQL running and ready (started concurrently when not), topics and databases there."""
        report = StartReport()
        self.state_dir.mkdir(parents=True, exist_ok=True)

        async def kafka() -> None:
            if self.kafka is None:
                report.notes.append(f"Kafka at {self.kafka_settings.bootstrap_servers} is external: not started here")
                return
            await _timed("kafka", self.kafka.start(), report)
            report.topics_created = await self.kafka.create_topics(self.kafka_settings)
            await apply_acls(self.kafka_settings, acl_table(self.kafka_settings.topic_prefix))

        async def postgres() -> None:
            await _timed("postgres", self.postgres.start(), report)
            await self.postgres.create_databases(SERVICES)

        await _gather_or_raise(kafka(), postgres())
        return report

    def infra_down(self) -> list[str]:
        """Stop Kafka and PostgreSQL (data kept); returns the parts that were running. Afterwards
        nothing listens on their ports, or this raises."""
        parts: dict[str, Callable[[], bool]] = {"postgres": self.postgres.stop}
        if self.kafka is not None:
            # The other layout too, when it runs: `make down` stops a cluster that `make run
            # KAFKA_BROKERS=3` started without being told KAFKA_BROKERS again (and the reverse).
            single, cluster = KafkaServer.from_settings(self.settings), KafkaCluster.from_settings(self.settings)
            other = single if isinstance(self.kafka, KafkaCluster) else cluster
            parts = {"kafka": self.kafka.stop, "kafka (other layout)": other.stop, **parts}
        stopped = list(dict.fromkeys("kafka" if n.startswith("kafka") else n for n in _stop_concurrently(parts)))
        ports = [*(self.kafka.ports if self.kafka else ()), self.postgres.port]
        busy = procs.wait_ports_free(ports, timeout=5)
        if busy:
            raise StackError(f"after stopping, 127.0.0.1:{busy[0]} is still held: {procs.describe_port_owner(busy[0])}")
        return stopped

    # Everything --------------------------------------------------------------------------------

    async def up(self) -> StartReport:
        report = await self.infra_up()
        base = current_env()
        auth = local_auth_env(base, self.state_dir)

        def env(name: str) -> dict[str, str]:
            """Each service connects as its own principal; its HTTP reads trust the local key."""
            kafka = kafka_env(self.kafka_as(name)) if self.credentials else {}
            return service_env(base, {**self.env(), **kafka, "HOPCAST_STATE_DIR": str(self.state_dir), **auth})

        pending = []
        for service in self.services:
            if service.is_running():
                report.already_running.append(service.name)
            else:
                pending.append(service)
        report.started.update(await start_services(pending, env, timeout_s=self.settings.service_ready_timeout_s))
        return report

    def down(self) -> list[str]:
        """Services first (they flush their outbox and commit offsets on the way out), then the infrastructure."""
        stopped = _stop_concurrently({s.name: s.stop for s in self.services})
        return stopped + self.infra_down()

    # Status ------------------------------------------------------------------------------------

    def status(self) -> list[PartStatus]:
        parts = []
        if self.kafka is None:
            parts.append(PartStatus("kafka", False, None, self.kafka_settings.bootstrap_servers, "", "external"))
        else:
            nodes = self.kafka.nodes if isinstance(self.kafka, KafkaCluster) else [self.kafka]
            for node in nodes:
                proc = node.process()
                parts.append(
                    PartStatus(
                        node.name,
                        proc is not None,
                        proc.pid if proc else None,
                        f"{node.bootstrap}, controller :{node.controller_port}",
                        self._relative(node.log_file),
                    )
                )
        proc = self.postgres.process()
        parts.append(
            PartStatus(
                "postgres",
                proc is not None,
                proc.pid if proc else None,
                f"127.0.0.1:{self.postgres.port}",
                self._relative(self.postgres.log_file),
            )
        )
        for service in self.services:
            proc = service.process()
            parts.append(
                PartStatus(
                    service.name,
                    proc is not None,
                    proc.pid if proc else None,
                    f"127.0.0.1:{service.http_port}",
                    self._relative(service.log_file),
                )
            )
        for name in self.not_installed():
            parts.append(PartStatus(name, False, None, "", "", "not built yet"))
        return parts

    def _relative(self, path: Path) -> str:
        """Paths inside the state folder, relative to it (the status table names the folder once)."""
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self.state_dir))
        return str(path)

    def running_parts(self) -> list[str]:
        return [p.name for p in self.status() if p.running]
