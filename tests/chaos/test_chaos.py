"""Fault injection while runs flow: every service SIGKILLed in turn and started again as `make up`
does, the broker SIGKILLed and restarted, PostgreSQL restarted, topics replayed from offset zero;
then the contract's invariants, from the outbound topics and the databases (faults.py).

`make test` runs the short version (a few dozen runs, one round of faults); `make test-chaos`
the full one (HOPCAST_CHAOS=full: hundreds of runs, three rounds, every replay). The figures
are printed and written to $HOPCAST_STATE_DIR/chaos/report-{short,full}.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import pytest

from hopcast_shared.settings import state_dir
from hopcast_shared.topics import CONTENT, SCHEDULER
from hopcast_stack import faults
from hopcast_stack.faults import Fault
from hopcast_stack.pytest_plugin import TestStack
from hopcast_stack.services import ServiceSet
from hopcast_stack.upstream import Upstream
from hopcast_stack.workload import OWN_TOPIC, Recorder, ResilientProducer, Workload, new_orgs, seed_events

FULL = os.environ.get("HOPCAST_CHAOS") == "full"


@dataclass(frozen=True)
class Plan:
    orgs: int
    wave: int  # runs fired before each fault (and once more at the end)
    rounds: int
    replays: bool  # the consumer-group rewinds (they wait for a dead member's session to expire)


PLAN = Plan(orgs=12, wave=12, rounds=3, replays=True) if FULL else Plan(orgs=4, wave=4, rounds=1, replays=False)
# A pending post the killed publisher had claimed waits for its lease to run out before another
# worker resumes it; the default lease (300 s) covers a real platform's slowest call, the sandbox
# publishes at once: a short lease lets a run caught by the kill finish within the test (it must
# outlast a platform call between two renewals: the timeouts are shortened with it).
CHAOS_ENV = {
    "PUBLISHER_HTTP_DEADLINE_S": "5",
    "PUBLISHER_LEASE_S": "15",
    "PUBLISHER_HTTP_CONNECT_TIMEOUT_S": "2",
    "PUBLISHER_HTTP_READ_TIMEOUT_S": "5",
}
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600 if FULL else 600)]


async def _in_flight(workload: Workload, count: int) -> None:
    """Until `count` triggers were sent, so the next fault strikes runs in flight."""
    deadline = time.monotonic() + 120
    while len(workload.sent) < count:
        assert time.monotonic() < deadline, "the workload stopped sending"
        await asyncio.sleep(0.05)


async def test_every_run_ends_once_through_kills_restarts_and_replays(chaos_stack: TestStack) -> None:
    stack = chaos_stack
    services: ServiceSet = await stack.start_services(env=CHAOS_ENV)
    producer = ResilientProducer(services.kafka)
    try:
        async with Recorder(services.kafka) as recorder:
            orgs = new_orgs(PLAN.orgs, credits=1000)
            rng = random.Random(9)
            materials = PLAN.wave * (9 if PLAN.replays else 7) * PLAN.rounds // PLAN.orgs + 4
            async with Upstream(services.kafka_as("upstream"), observer=services.kafka) as upstream:
                for org in orgs:
                    await upstream.send_all(seed_events(services, org, materials, rng))
                await upstream.wait_consumed(within=180)

            steps: list[Callable[[], Awaitable[Fault]]] = [
                *(partial(faults.kill_service, services, name) for name in services.running()),
                lambda: faults.kill_broker(stack, services),
                lambda: faults.restart_postgres(stack, services),
                lambda: faults.reproduce_topic(services.kafka, CONTENT, producer),
            ]
            if PLAN.replays:
                steps += [
                    lambda: faults.reproduce_topic(services.kafka, SCHEDULER, producer),
                    lambda: faults.rewind_group(stack, services, "billing"),
                    lambda: faults.rewind_group(stack, services, "publisher"),
                ]
            workload = Workload(producer, orgs)
            injected: list[Fault] = []
            broker_back: list[float] = []
            for _ in range(PLAN.rounds):
                for step in steps:
                    workload.fire(PLAN.wave)
                    await _in_flight(workload, len(workload.sent) + PLAN.wave // 2)
                    fault = await step()
                    injected.append(fault)
                    if fault.name.startswith("SIGKILL Kafka"):
                        broker_back.append(fault.at + fault.down_s)
            workload.fire(PLAN.wave)
            await workload.finished(within=600)
            await faults.wait_quiet(services, recorder, len(workload.sent), within=600 if FULL else 300)
            await faults.wait_all_ready(services)

            for fault in injected:
                faults.measure_flow(fault, workload, recorder)
            relays = [faults.relay_recovery(recorder, since) for since in broker_back]
            verdict = await faults.check_invariants(services, recorder, workload)
            stuck = faults.log_mentions(services, "OutOfOrderSequenceNumber")
            report = {
                "plan": {**PLAN.__dict__, "env": CHAOS_ENV},
                **verdict.figures,
                "faults_injected": len(injected),
                "processes_killed": sum(f.name.startswith("SIGKILL") for f in injected),
                "faults": [f.summary() for f in injected],
                "relay_recovery_after_broker_restart_s": relays,
                "out_of_order_sequence_log_lines": stuck,
                "producer_retries": producer.retries,
                "recorder_restarts": recorder.restarts,
            }
            folder = state_dir() / "chaos"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"report-{'full' if FULL else 'short'}.json").write_text(json.dumps(report, indent=2))
            print(json.dumps(report, indent=2))
    finally:
        await producer.close()
        services.stop()

    assert verdict.violations == [], verdict.violations
    assert verdict.figures["runs"] == len(workload.sent) == verdict.figures["triggers"]
    assert verdict.figures["posts"] > 0
    # The flow came back after every fault: a run started after it completed.
    assert [f.name for f in injected if f.flow_s is None] == []
    # Every relay published again after each broker restart.
    assert all(set(r) == set(OWN_TOPIC) for r in relays), relays
