"""`hopcast topics create` and `hopcast topics list`: the contract's topics on any Kafka.

What a deployment runs once before the services (docker compose's `topics` job, the
Kubernetes `hopcast-topics` Job): it waits for the broker, then creates whatever topic of
`topics.topic_specs` is missing, with the configured partitions, replication and retention.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated

import typer

from hopcast_shared.listing import print_json_lines, print_table
from hopcast_shared.settings import KafkaSettings, load
from hopcast_shared.topics import ensure_topics, topic_specs

app = typer.Typer(no_args_is_help=True, add_completion=False, help="The contract's Kafka topics.")


async def create_when_reachable(kafka: KafkaSettings, wait_s: float) -> list[str]:
    """Create the missing topics, retrying while the broker is not reachable yet."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            return await ensure_topics(kafka)
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"Kafka at {kafka.bootstrap_servers} not usable after {wait_s:.0f}s: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@app.command("create")
def create(
    wait: Annotated[float, typer.Option(help="seconds to wait for the broker")] = 120.0,
) -> None:
    """Create every topic of the contract that does not exist yet (idempotent)."""
    kafka = load(KafkaSettings)
    try:
        created = asyncio.run(create_when_reachable(kafka, wait))
    except RuntimeError as exc:
        typer.echo(f"hopcast topics: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else " (all existed)"))


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON topic a line")] = False,
) -> None:
    """Print the topics the contract needs: name, partitions, replication factor, configuration."""
    specs = topic_specs(load(KafkaSettings))
    if as_json:
        print_json_lines(dataclasses.asdict(spec) for spec in specs)
        return
    print_table(
        f"{len(specs)} topics",
        ("topic", "partitions", "replication", "retention.ms", "min.insync.replicas"),
        (
            (
                s.name,
                str(s.partitions),
                str(s.replication_factor),
                s.config["retention.ms"],
                s.config.get("min.insync.replicas", "-"),
            )
            for s in specs
        ),
    )
