"""Three Kafka brokers on 127.0.0.1 as one cluster, for trying the loss of a broker locally and in
tests (`HOPCAST_KAFKA_BROKERS=3`, `make run KAFKA_BROKERS=3`; the chaos suite's broker-loss test).

Every node runs in combined mode (broker and controller in one JVM, as the single broker does):
a static three-voter KRaft quorum survives the loss of any one node, with three JVMs rather
than the four of a separate controller, which matters on two cores. Topics are replicated three
times with `min.insync.replicas` 2 (the contract's layout for RF >= 3, hopcast_shared.topics),
and so are the internal topics (group offsets, transaction state): one node down loses nothing
acknowledged with acks=all and keeps every partition writable.

Layout under `home`: credentials.json and cluster-id (shared by the nodes), node-<id>/ (each
node's server.properties and data); logs/kafka-<id>.log and run/kafka-<id>.pid beside the
single broker's files. Security, ports per node and readiness as in kafka.KafkaServer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from hopcast_shared.settings import KafkaSettings
from hopcast_stack.config import StackSettings
from hopcast_stack.credentials import Credentials
from hopcast_stack.errors import StackError
from hopcast_stack.kafka import KafkaServer, _quiet_aiokafka
from hopcast_stack.kafka_jars import java_executable, resolve_jars

log = logging.getLogger(__name__)

NODES = 3
# What a cluster node changes beside the replication: a follower that stops fetching leaves the
# ISR after 10 s instead of 30 (a killed node is fenced sooner still, by its session timeout).
CLUSTER_OVERRIDES = {"replica.lag.time.max.ms": "10000"}


@dataclass
class KafkaCluster:
    """Three combined-mode KRaft nodes; `ports` is one (client, controller) pair per node."""

    home: Path
    ports_by_node: Sequence[tuple[int, int]]
    libs: Path | None = None
    logs_dir: Path | None = None
    run_dir: Path | None = None
    heap_opts: str = "-Xms128m -Xmx384m"
    ready_timeout_s: float = 90.0
    secure: bool = True
    nodes: list[KafkaServer] = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        libs = (self.libs or self.home.parent / "kafka" / "libs").resolve()
        voters = ",".join(f"{i}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(self.ports_by_node, 1))
        self.nodes = [
            KafkaServer(
                home=self.home / f"node-{i}",
                port=port,
                controller_port=controller,
                libs=libs,
                logs_dir=self.logs_dir or self.home.parent / "logs",
                run_dir=self.run_dir or self.home.parent / "run",
                heap_opts=self.heap_opts,
                ready_timeout_s=self.ready_timeout_s,
                overrides=CLUSTER_OVERRIDES,
                secure=self.secure,
                node_id=i,
                voters=voters,
                replicas=len(self.ports_by_node),
                name=f"kafka-{i}",
                credentials_file=self.home / "credentials.json",
                cluster_id_file=self.home / "cluster-id",
            )
            for i, (port, controller) in enumerate(self.ports_by_node, 1)
        ]

    @classmethod
    def from_settings(cls, settings: StackSettings) -> KafkaCluster:
        """Node i listens on the broker port + 2(i-1) and the controller port + 2(i-1):
        9092/9093, 9094/9095, 9096/9097 by default."""
        base, controller = settings.kafka_broker_port, settings.kafka_controller_port
        state = settings.state_dir
        return cls(
            home=state / "kafka-cluster",
            ports_by_node=[(base + 2 * i, controller + 2 * i) for i in range(NODES)],
            libs=state / "kafka" / "libs",
            logs_dir=state / "logs",
            run_dir=state / "run",
            heap_opts=settings.kafka_cluster_heap_opts,
            ready_timeout_s=settings.kafka_ready_timeout_s,
        )

    # What KafkaServer offers too -----------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(port for node in self.nodes for port in node.ports)

    @property
    def credentials(self) -> Credentials:
        return self.nodes[0].credentials

    def client_settings(self, principal: str = "admin", **updates: object) -> KafkaSettings:
        """A client of the whole cluster: every node in the bootstrap list, topics replicated 3 times."""
        layout = {"replication_factor": len(self.nodes), **updates}
        return self.nodes[0].client_settings(principal, bootstrap_servers=self.bootstrap, **layout)

    def process(self) -> psutil.Process | None:
        """A running node's JVM (the first one found), for a status line."""
        return next((p for p in (node.process() for node in self.nodes) if p is not None), None)

    def is_running(self) -> bool:
        return all(node.is_running() for node in self.nodes)

    def node(self, node_id: int) -> KafkaServer:
        return self.nodes[node_id - 1]

    # Lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Start the nodes that are not running (all at once: a node alone has no quorum to join)
        and return once the cluster's metadata lists every broker. True when any was started."""
        stopped = [node for node in self.nodes if not node.is_running()]
        if stopped:
            java = await asyncio.to_thread(self._prepare, stopped)
            children = [node.spawn(java) for node in stopped]
            waits = [node.wait_ready(child) for node, child in zip(stopped, children, strict=True)]
            results = await asyncio.gather(*waits, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise StackError("\n\n".join(str(e) for e in errors))
        await self.wait_all_brokers()
        return bool(stopped)

    def _prepare(self, nodes: Sequence[KafkaServer]) -> str:
        """Jars and Java once, then each node's properties and storage (formatted in parallel)."""
        java = java_executable()
        resolve_jars(self.nodes[0].jars)
        self.credentials  # noqa: B018 (made once, before the nodes read it concurrently)
        self.nodes[0].cluster_id()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            list(pool.map(lambda node: (node.write_properties(), node.format_storage(java)), nodes))
        return java

    async def wait_all_brokers(self, *, within: float | None = None) -> None:
        """Until the cluster's metadata (as any node tells it) lists all of its brokers."""
        from aiokafka.admin import AIOKafkaAdminClient

        from hopcast_shared.kafka import connection_kwargs

        loop = asyncio.get_running_loop()
        deadline = loop.time() + (within or self.ready_timeout_s)
        seen = 0
        while True:
            with _quiet_aiokafka():
                admin = AIOKafkaAdminClient(
                    request_timeout_ms=5000, client_id="hopcast-stack", **connection_kwargs(self.client_settings())
                )
                try:
                    await admin.start()
                    seen = len((await admin.describe_cluster()).get("brokers") or ())
                except Exception:  # not yet
                    seen = 0
                finally:
                    await admin.close()
            if seen >= len(self.nodes):
                return
            if loop.time() > deadline:
                raise StackError(f"the Kafka cluster at {self.bootstrap} lists {seen} of {len(self.nodes)} brokers")
            await asyncio.sleep(0.25)

    def stop(self, *, timeout: float = 20.0) -> bool:
        """Stop every node at once (a controlled shutdown each); False when none was running."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            stopped = list(pool.map(lambda node: node.stop(timeout=timeout), self.nodes))
        return any(stopped)

    async def create_topics(self, kafka: KafkaSettings | None = None) -> list[str]:
        return await self.nodes[0].create_topics(kafka or self.client_settings())
