"""The one way a Hopcast service runs: its database (migrated), its consumers, its outbox
relay, its background loops, and HTTP /health, /ready and /metrics (open: the metrics' labels
carry no organization) beside its JSON read routes (bearer token required, hopcast_shared/http.py).

A service describes itself with a `ServiceDefinition`; `ServiceRuntime` wires it to the
settings. `serve(definition)` runs it under uvicorn (what `python -m hopcast_<name>` does);
tests use `async with ServiceRuntime(definition, ...)`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hopcast_shared import metrics
from hopcast_shared.auth import TokenVerifier
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.fair_feed import FairFeed
from hopcast_shared.handling import Handler
from hopcast_shared.http import JsonRoute, JsonRouter
from hopcast_shared.kafka import make_broker, make_producer
from hopcast_shared.lag import lag_loop
from hopcast_shared.logs import setup_logging
from hopcast_shared.migrations import load_migrations
from hopcast_shared.outbox import OutboxRelay
from hopcast_shared.settings import KafkaSettings, ServiceSettings, TelemetrySettings, load
from hopcast_shared.subscription import subscribe
from hopcast_shared.telemetry import setup_tracing

log = logging.getLogger(__name__)

BackgroundTask = Callable[["ServiceRuntime"], Awaitable[None]]
# Read-only JSON routes of a service, built from the runtime once it exists.
RoutesFactory = Callable[["ServiceRuntime"], Sequence[JsonRoute]]


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service is: its name, the topics it consumes and how it handles each event type."""

    name: str
    consumes: Sequence[str]
    handlers: Mapping[str, Handler]
    migrations_dir: Path | None = None
    background: Sequence[BackgroundTask] = ()
    http_routes: RoutesFactory | None = None
    workers_per_topic: int = 1


class ServiceRuntime:
    def __init__(
        self,
        definition: ServiceDefinition,
        *,
        settings: ServiceSettings | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings = settings or ServiceSettings.for_service(definition.name)
        self.kafka = kafka or load(KafkaSettings)
        self.broker: KafkaBroker = make_broker(self.kafka, self.name)
        self._db: Database | None = None
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.feed: FairFeed | None = None
        self._started = False

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError(f"{self.name}: the database is not open yet")
        return self._db

    async def _producer(self) -> AIOKafkaProducer:
        producer = make_producer(self.kafka, f"{self.name}-outbox")
        await producer.start()
        return producer

    async def open(self) -> None:
        """Migrate and open the database, register consumers, start the relay (broker not yet)."""
        migrations = (
            load_migrations(self.name, self.definition.migrations_dir) if self.definition.migrations_dir else []
        )
        self._db = await Database.open(
            self.settings.database_url,
            migrations,
            min_size=self.settings.db_pool_min,
            max_size=self.settings.db_pool_max,
            migrations_url=self.settings.migrations_database_url,
            migrate=self.settings.migrate_on_start,
            schema_wait_s=self.settings.schema_wait_s,
        )
        self.consumer = EventConsumer(
            self.name,
            self._db,
            self.definition.handlers,
            kafka=self.kafka,
            settings=self.settings,
            consumes=self.definition.consumes,
        )
        if self.definition.consumes:
            self.feed = subscribe(
                self.broker,
                self.consumer,
                self.definition.consumes,
                kafka=self.kafka,
                workers_per_topic=self.definition.workers_per_topic,
                batch_max=self.settings.consumer_batch_max,
                batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
                window_max_records=self.settings.consumer_window_max_records,
                window_max_bytes=self.settings.consumer_window_max_bytes,
                fetch_min_bytes=self.settings.consumer_fetch_min_bytes,
                fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            )
        self.relay = OutboxRelay(
            self._db,
            self._producer,
            service=self.name,
            batch_size=self.settings.outbox_batch_size,
            poll_interval_s=self.settings.outbox_poll_interval_s,
        )
        await self.relay.start()

    async def start_background(self) -> None:
        for task in self.definition.background:
            self._tasks.append(asyncio.create_task(self._supervise(task), name=f"{self.name}:{task.__name__}"))
        if self.definition.consumes:
            lag = lag_loop(self.kafka, self.name, self.definition.consumes)
            self._tasks.append(asyncio.create_task(lag, name=f"{self.name}:consumer_lag"))
        self._started = True

    async def _supervise(self, task: BackgroundTask) -> None:
        """Keep a background loop alive: log a crash and start it again after a pause."""
        while True:
            try:
                await task(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting", task.__name__)
                await asyncio.sleep(1.0)

    async def stop_background(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def close(self) -> None:
        """Stop the relay and close the database, once the consumers have stopped."""
        await self.stop_background()
        if self.relay is not None:
            await self.relay.stop()
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._started = False

    async def __aenter__(self) -> ServiceRuntime:
        await self.open()
        await self.broker.start()
        await self.start_background()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_background()
        await self.broker.stop()
        await self.close()

    async def readiness(self) -> dict[str, bool]:
        """What /ready checks: the database answers, the broker answers, the relay runs."""
        return {
            "database": self._db is not None and await self._db.is_ready(),
            "kafka": self._started and bool(await self.broker.ping(timeout=2.0)),
            "outbox_relay": self.relay is not None and self.relay.running,
        }

    async def update_gauges(self) -> None:
        if self.relay is not None and self._db is not None:
            backlog, age = await self.relay.backlog()
            metrics.OUTBOX_BACKLOG.labels(self.name).set(backlog)
            metrics.OUTBOX_OLDEST_AGE.labels(self.name).set(age)

    def asgi(self, verifier: TokenVerifier | None = None) -> JsonRouter:
        """The ASGI application: FastStream's lifecycle plus the HTTP routes, which answer only
        a bearer token `verifier` accepts (by default from HTTP_AUTH_*: missing settings in
        production stop the service here, before it serves anything)."""
        verifier = verifier or TokenVerifier.from_settings()
        runtime = self

        @get(include_in_schema=False)
        async def health(scope: Any) -> AsgiResponse:
            return AsgiResponse(b'{"status":"alive"}', 200, headers={"content-type": "application/json"})

        @get(include_in_schema=False)
        async def ready(scope: Any) -> AsgiResponse:
            checks = await runtime.readiness()
            ok = all(checks.values())
            metrics.READY.labels(runtime.name).set(1 if ok else 0)  # for the flapping alert
            body = ("{" + ",".join(f'"{k}":{str(v).lower()}' for k, v in checks.items()) + "}").encode()
            return AsgiResponse(body, 200 if ok else 503, headers={"content-type": "application/json"})

        @get(include_in_schema=False)
        async def metrics_route(scope: Any) -> AsgiResponse:
            try:
                await runtime.update_gauges()
            except Exception:
                log.debug("gauges not updated", exc_info=True)
            return AsgiResponse(generate_latest(), 200, headers={"content-type": CONTENT_TYPE_LATEST})

        routes: list[tuple[str, Any]] = [("/health", health), ("/ready", ready), ("/metrics", metrics_route)]
        app = AsgiFastStream(
            self.broker,
            asgi_routes=routes,
            on_startup=[self.open],
            after_startup=[self.start_background],
            on_shutdown=[self.stop_background],
            after_shutdown=[self.close],
            logger=None,
        )
        json_routes = self.definition.http_routes(runtime) if self.definition.http_routes else []
        return JsonRouter(json_routes, app, verifier=verifier)


def serve(definition: ServiceDefinition) -> None:
    """Run a service until SIGINT/SIGTERM: the entry point of `python -m hopcast_<name>`."""
    import uvicorn

    telemetry = load(TelemetrySettings)
    setup_logging(definition.name, level=telemetry.log_level, fmt=telemetry.log_format)
    setup_tracing(definition.name, telemetry)
    runtime = ServiceRuntime(definition)
    # What is imported and built by now lives as long as the process: keep it out of the
    # collector's full passes, which the short-lived objects of every batch would otherwise set
    # off over and over, each scanning all of it (25-45% of the publisher's CPU, bench/README.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        runtime.asgi(),
        host=runtime.settings.http_host,
        port=runtime.settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
