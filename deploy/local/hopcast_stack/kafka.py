"""A real Apache Kafka broker for local runs and tests: jars resolved once from Maven Central, a
single-node KRaft server (broker and controller in one JVM) on 127.0.0.1, started detached,
ready when an aiokafka client gets its metadata, and the contract's topics created up front.
`kafka_cluster.KafkaCluster` runs three of these nodes as one cluster (a static quorum).

Layout under the state folder: kafka/libs (jars, shared by every broker of the machine's
checkout), kafka/server.properties, kafka/cluster-id, kafka/data (log dirs, kept across
restarts), kafka/credentials.json (the principals' passwords, mode 0600), logs/kafka.log,
run/kafka.pid.

Security is on by default (`from_settings` and the test stack): one SASL_PLAINTEXT listener where
every client authenticates with SCRAM-SHA-512 (the credentials are bootstrapped when the storage
is formatted), the KRaft StandardAuthorizer with no access where no ACL grants it
(hopcast_shared.acls holds the table), and the controller listener behind SASL/PLAIN for the
broker's own identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ensure_topics, topic_specs
from hopcast_stack import procs
from hopcast_stack.config import StackSettings
from hopcast_stack.credentials import BROKER_PRINCIPAL, MECHANISM, Credentials
from hopcast_stack.errors import StackError
from hopcast_stack.kafka_jars import PACKAGE_DIR, java_executable, new_cluster_id, resolve_jars

log = logging.getLogger(__name__)

LOG4J_CONFIG = PACKAGE_DIR / "log4j2.xml"

# What bin/kafka-run-class.sh passes, minus the 1 GB heap (see StackSettings.kafka_heap_opts).
JVM_FLAGS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)


# --- the broker ---------------------------------------------------------------------------------


@dataclass
class KafkaServer:
    """One single-node KRaft broker whose files live under `home` (jars in `libs`)."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    libs: Path | None = None
    logs_dir: Path | None = None
    run_dir: Path | None = None
    heap_opts: str = "-Xms256m -Xmx512m"
    ready_timeout_s: float = 60.0
    # Extra or overriding server.properties (the test stack uses it for speed over durability).
    overrides: Mapping[str, str] = field(default_factory=dict)
    # SASL/SCRAM and ACLs on (the principals' passwords in home/credentials.json); False: an
    # open PLAINTEXT broker, for a test that configures its own listeners.
    secure: bool = False
    # One node of a cluster (kafka_cluster.KafkaCluster): its id, the static controller quorum
    # ("1@host:port,2@host:port,..."; None: this node alone), the replicas of the internal topics
    # and the default min ISR, a name for its log and pid files, and the cluster's shared files.
    node_id: int = 1
    voters: str | None = None
    replicas: int = 1
    name: str = "kafka"
    credentials_file: Path | None = None
    cluster_id_file: Path | None = None

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.libs = (self.libs or self.home / "libs").resolve()
        self.logs_dir = (self.logs_dir or self.home.parent / "logs").resolve()
        self.run_dir = (self.run_dir or self.home.parent / "run").resolve()

    @classmethod
    def from_settings(cls, settings: StackSettings) -> KafkaServer:
        state = settings.state_dir
        return cls(
            home=state / "kafka",
            port=settings.kafka_broker_port,
            controller_port=settings.kafka_controller_port,
            logs_dir=state / "logs",
            run_dir=state / "run",
            heap_opts=settings.kafka_heap_opts,
            ready_timeout_s=settings.kafka_ready_timeout_s,
            secure=True,
        )

    # Paths -------------------------------------------------------------------------------------

    @property
    def jars(self) -> Path:
        assert self.libs is not None
        return self.libs

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_file(self) -> Path:
        assert self.logs_dir is not None
        return self.logs_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        assert self.run_dir is not None
        return self.run_dir / f"{self.name}.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> tuple[int, int]:
        return (self.port, self.controller_port)

    @property
    def credentials(self) -> Credentials:
        """The principals' passwords (made on first use)."""
        return Credentials.load_or_create(self.credentials_file or self.home / "credentials.json")

    def client_settings(self, principal: str = "admin", **updates: object) -> KafkaSettings:
        """Settings of a client of this broker acting as `principal` (secure), or plain ones."""
        kafka = KafkaSettings(bootstrap_servers=self.bootstrap).model_copy(update=updates)
        return self.credentials.client_settings(kafka, principal) if self.secure else kafka

    def cluster_id(self) -> str:
        """Generated once and kept: the formatted log dirs carry it, and a different id would not start."""
        path = self.cluster_id_file or self.home / "cluster-id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    # Configuration -----------------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        listener = f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        # One broker: every internal topic has one replica, and an ISR of one is enough. Three or
        # more: three replicas, and a write is acknowledged once two have it (with acks=all).
        replicas = str(min(self.replicas, 3))
        min_isr = "2" if self.replicas >= 3 else "1"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **self._quorum_properties(),
            "listeners": listener,
            "advertised.listeners": listener,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            # Internal topics default to 50 partitions each, slow to create on the first group join
            # or transaction; a few are plenty for one machine.
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.num.partitions": "6",
            # The default 3 s wait before the first rebalance slows every consumer group join.
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "6",
            # Topics are created up front with their retention (hopcast_shared.topics); a typo in a
            # topic name must fail, not create a new topic.
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            # A broker killed outright keeps its registration until its session times out (default
            # 9 s), and its next incarnation waits for that; one JVM on one machine can be quicker.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            # Small local footprint: the cleaner's 128 MB dedupe buffer and many threads are for servers.
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            "background.threads": "4",
        }
        if self.secure:
            props.update(self._security_properties())
        props.update(self.overrides)
        return props

    def _quorum_properties(self) -> dict[str, str]:
        """A node alone bootstraps a dynamic quorum of itself (formatted --standalone); a cluster's
        nodes share a static voter set, known to each from its configuration."""
        if self.voters is None:
            return {"controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}"}
        return {"controller.quorum.voters": self.voters}

    def _security_properties(self) -> dict[str, str]:
        """Clients on SASL_PLAINTEXT with SCRAM-SHA-512 (also the broker to itself); the controller
        listener with SASL/PLAIN for the broker's identity alone; the StandardAuthorizer, denying
        what no ACL allows. `admin` and `broker` are super users."""
        broker_password = self.credentials.password(BROKER_PRINCIPAL)
        listener = f"SASL_PLAINTEXT://127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return {
            "listeners": f"{listener},{controller}",
            "advertised.listeners": f"{listener},{controller}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                f'{scram} required username="{BROKER_PRINCIPAL}" password="{broker_password}";'
            ),
            # SCRAM credentials live in the metadata log, which the controller listener must not
            # depend on: PLAIN, with the one user defined here.
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required username="{BROKER_PRINCIPAL}" password="{broker_password}" '
                f'user_{BROKER_PRINCIPAL}="{broker_password}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:admin;User:{BROKER_PRINCIPAL}",
        }

    def write_properties(self) -> None:
        """Written at every start (ports may change); the cluster id and data stay."""
        self.home.mkdir(parents=True, exist_ok=True)
        lines = ["# Written by hopcast_stack.kafka at every start; edits are overwritten."]
        lines += [f"{k}={v}" for k, v in self.properties().items()]
        tmp = self.properties_file.with_suffix(".tmp")
        # It holds the broker's password: readable by us alone.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        tmp.replace(self.properties_file)

    def _classpath(self) -> str:
        return f"{self.jars}/*"

    @property
    def _scram_marker(self) -> Path:
        return self.data_dir / ".hopcast-scram"

    def _scram_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.credentials.passwords, sort_keys=True).encode()).hexdigest()

    def format_storage(self, java: str) -> None:
        """Format the log dir for this cluster once (with every principal's SCRAM credentials
        when secure); the StorageTool is told to ignore a formatted dir, and we skip the JVM
        entirely when meta.properties is already there. A log dir formatted before security was
        on (or with other passwords) has no usable credentials: it is moved aside, not deleted."""
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted and self.secure and not self._current_scram():
            aside = self.home / f"data.before-scram-{int(time.time())}"
            log.warning("Kafka's log dir was formatted without these credentials: moved to %s, formatting anew", aside)
            self.data_dir.replace(aside)
            formatted = False
        if formatted:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                java,
                *JVM_FLAGS,
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                *(["--standalone"] if self.voters is None else []),
                "-t",
                self.cluster_id(),
                "-c",
                str(self.properties_file),
                "--ignore-formatted",
                *(self.credentials.scram_arguments() if self.secure else []),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise StackError(f"formatting Kafka's storage in {self.data_dir} failed:\n{output}")
        if self.secure:
            self._scram_marker.write_text(self._scram_digest() + "\n")

    def _current_scram(self) -> bool:
        return self._scram_marker.is_file() and self._scram_marker.read_text().strip() == self._scram_digest()

    def command(self, java: str) -> list[str]:
        assert self.logs_dir is not None
        return [
            java,
            *self.heap_opts.split(),
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        ]

    # Lifecycle ---------------------------------------------------------------------------------

    def process(self) -> psutil.Process | None:
        """Our broker's JVM: the pid file's process, alive, and running kafka.Kafka on our properties."""
        return procs.find_process(self.pid_file, "kafka.Kafka", str(self.properties_file))

    def is_running(self) -> bool:
        return self.process() is not None

    def prepare(self) -> str:
        """Everything before the JVM starts (blocking): jars, Java, properties, formatted storage."""
        java = java_executable()
        resolve_jars(self.jars)
        self.write_properties()
        self.format_storage(java)
        return java

    def spawn(self, java: str) -> subprocess.Popen[bytes]:
        busy = [p for p in self.ports if procs.port_in_use(p)]
        if busy:
            raise StackError(
                f"Kafka cannot listen on 127.0.0.1:{busy[0]}: {procs.describe_port_owner(busy[0])}. "
                "Stop it, or pick other ports (KAFKA_BOOTSTRAP_SERVERS or KAFKA_PORT, KAFKA_CONTROLLER_PORT)."
            )
        return procs.spawn(self.command(java), log=self.log_file, pid_file=self.pid_file, cwd=self.home)

    async def start(self) -> bool:
        """Start the broker unless it runs; return once it serves metadata. True when we started it."""
        if self.is_running():
            await self.wait_ready()
            return False
        java = await asyncio.to_thread(self.prepare)
        await self.wait_ready(self.spawn(java))
        return True

    async def wait_ready(self, child: subprocess.Popen[bytes] | None = None) -> None:
        """Poll until a real client gets the cluster's metadata with a broker in it; fail fast when
        the JVM (`child`, when this process started it) exits, saying how, and with the log's tail
        when time runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout_s
        last_error = "no answer yet"
        while True:
            procs.keep_pid_file(self.pid_file, child)
            how = procs.exited(child, child is not None or self.is_running())
            if how is not None:
                raise StackError(
                    f"Kafka {how} during startup; the end of {self.log_file}:\n{procs.tail(self.log_file)}"
                )
            try:
                if await metadata_ok(self.client_settings()):
                    return
                last_error = "metadata has no broker yet"
            except Exception as exc:  # any failure to connect means "not yet"
                last_error = f"{type(exc).__name__}: {exc}"
            if loop.time() > deadline:
                raise StackError(
                    f"Kafka at {self.bootstrap} was not ready after {self.ready_timeout_s:.0f}s ({last_error}); "
                    f"the end of {self.log_file}:\n{procs.tail(self.log_file)}"
                )
            await asyncio.sleep(0.25)

    def stop(self, *, timeout: float = 20.0) -> bool:
        """SIGTERM (a controlled shutdown), SIGKILL after `timeout`. False when it was not running."""
        proc = self.process()
        if proc is None:
            return False
        if not procs.terminate(proc, timeout=timeout):
            log.warning("Kafka did not stop within %.0fs and was killed", timeout)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        busy = procs.wait_ports_free(self.ports, timeout=10)
        if busy:
            owner = procs.describe_port_owner(busy[0])
            raise StackError(f"Kafka stopped but 127.0.0.1:{busy[0]} is still held: {owner}")
        return True

    async def create_topics(self, kafka: KafkaSettings | None = None) -> list[str]:
        """Create the contract's topics that are missing (idempotent); returns the names created.
        Retried briefly: right after startup the controller may still be settling."""
        settings = kafka or self.client_settings()
        for attempt in range(20):
            try:
                return await ensure_topics(settings, topic_specs(settings))
            except Exception:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """While we poll a broker that is still starting, aiokafka logs every refused connection as an
    ERROR; those are expected, and the caller reports the real outcome."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def metadata_ok(kafka: KafkaSettings, *, timeout_ms: int = 5000) -> bool:
    """Whether a client of `kafka` can connect and gets metadata listing at least one broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    from hopcast_shared.kafka import connection_kwargs

    with _quiet_aiokafka():
        admin = AIOKafkaAdminClient(
            request_timeout_ms=timeout_ms, client_id="hopcast-stack", **connection_kwargs(kafka)
        )
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()
