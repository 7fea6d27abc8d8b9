"""The loss of a broker under load: the four services on a three-broker KRaft cluster (replication
3, min.insync.replicas 2, producers acks=all), runs flowing; the leader of the busiest partitions
is SIGKILLed, runs keep being triggered, and the node is started again. Then: no run lost or
ended twice, no double post or debit (faults.check_invariants), and producers and consumers back
to normal within 30 s: a run triggered after the kill completes, every run in flight at the kill
completes, and the groups' lag is back to what it was before the kill.

`make test` runs the short version (one kill, ~90 s with the cluster's start); `make test-chaos`
the full one (HOPCAST_CHAOS=full: more organizations and runs, three kills, each of the leader
of the busiest partitions at that moment). The figures are printed and written to
bench/results/broker_loss_{short,full}.json (beside bench's own figures; the full one is committed).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hopcast_stack import faults
from hopcast_stack.broker_loss import (
    BrokerLoss,
    ClusterView,
    LagSampler,
    busiest_leader,
    kill_node,
    longest_send_stall,
    restart_node,
    runs_completing_again,
)
from hopcast_stack.kafka_cluster import KafkaCluster
from hopcast_stack.pytest_plugin import TestStack
from hopcast_stack.upstream import Upstream
from hopcast_stack.workload import Recorder, ResilientProducer, Workload, new_orgs, seed_events

FULL = os.environ.get("HOPCAST_CHAOS") == "full"
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
RECOVERY_GOAL_S = 30.0


@dataclass(frozen=True)
class Plan:
    orgs: int
    kills: int
    runs_per_phase: int  # triggers sent while the leader is found and killed, and again after
    interval_s: float  # between two triggers


PLAN = (
    Plan(orgs=12, kills=3, runs_per_phase=60, interval_s=0.15)
    if FULL
    else Plan(orgs=4, kills=1, runs_per_phase=16, interval_s=0.25)
)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800 if FULL else 400)]


async def _sent(workload: Workload, count: int, *, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while len(workload.sent) < count:
        assert time.monotonic() < deadline, "the workload stopped sending"
        await asyncio.sleep(0.05)


async def test_losing_the_busiest_leader_loses_no_run_and_recovers_within_30_s(cluster_stack: TestStack) -> None:
    stack = cluster_stack
    cluster = stack.kafka
    assert isinstance(cluster, KafkaCluster)
    began = time.monotonic()
    services = await stack.start_services()
    assert services.kafka.replication_factor == 3
    view = ClusterView(services.kafka)
    producer = ResilientProducer(services.kafka)
    losses: list[BrokerLoss] = []
    try:
        # The topics the services use are replicated three times, each partition fully in sync.
        partitions = await view.partitions()
        assert {len(p["replicas"]) for p in partitions.values()} == {3}
        assert await view.under_replicated() == 0
        async with Recorder(services.kafka) as recorder, LagSampler(view) as lag:
            orgs = new_orgs(PLAN.orgs, credits=1000)
            rng = random.Random(19)
            materials = PLAN.runs_per_phase * (2 * PLAN.kills + 1) // PLAN.orgs + 4
            async with Upstream(services.kafka_as("upstream"), observer=services.kafka) as upstream:
                for org in orgs:
                    await upstream.send_all(seed_events(services, org, materials, rng))
                await upstream.wait_consumed(within=180)
            workload = Workload(producer, orgs, interval_s=PLAN.interval_s)

            for _ in range(PLAN.kills):
                # Under load: triggers flowing while the busiest partitions are measured, then the
                # kill strikes runs in flight, and triggers keep coming through the outage.
                workload.fire(PLAN.runs_per_phase)
                await _sent(workload, len(workload.sent) + PLAN.runs_per_phase // 3)
                node, busiest = await busiest_leader(view)
                killed_at = await kill_node(cluster, node)
                loss = BrokerLoss(node, busiest, killed_at)
                losses.append(loss)
                workload.fire(PLAN.runs_per_phase)
                await workload.finished(within=300)
                loss.sending_until = time.time()
                await restart_node(cluster, node, loss, view)
            workload.fire(PLAN.runs_per_phase // 2)
            await workload.finished(within=300)
            await faults.wait_quiet(services, recorder, len(workload.sent), within=300)
            run_of = faults.run_triggers(recorder)
            for loss, following in zip(losses, [*losses[1:], None], strict=True):
                runs_completing_again(loss, workload, recorder, run_of)
                loss.figures["upstream_producer_longest_stall_s"] = longest_send_stall(workload, loss)
                baseline = lag.baseline(loss.killed_at)
                until = following.killed_at if following else None
                loss.figures["lag_before_kill"] = baseline
                loss.figures["lag_peak_after_kill"] = lag.peak(loss.killed_at, until)
                loss.figures["lag_back_to_normal_s"] = lag.back_to_normal(loss.killed_at, baseline, until)
            verdict = await faults.check_invariants(services, recorder, workload)
            report = {
                "test": "broker_loss",
                "version": "full" if FULL else "short",
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "cores": os.cpu_count(),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(),
                },
                "cluster": {
                    "brokers": 3,
                    "replication_factor": 3,
                    "min_insync_replicas": 2,
                    "acks": "all",
                    "quorum": "3 combined broker+controller nodes, static voters",
                },
                "plan": PLAN.__dict__,
                **verdict.figures,
                "faults_injected": len(losses),
                "brokers_killed": [loss.summary() for loss in losses],
                "recovery_goal_s": RECOVERY_GOAL_S,
                "producer_retries": producer.retries,
                "recorder_restarts": recorder.restarts,
                "out_of_order_sequence_log_lines": faults.log_mentions(services, "OutOfOrderSequenceNumber"),
                "wall_time_s": round(time.monotonic() - began, 1),
            }
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"broker_loss_{'full' if FULL else 'short'}.json").write_text(
                json.dumps(report, indent=2) + "\n"
            )
            print(json.dumps(report, indent=2))
    finally:
        await producer.close()
        await view.close()
        services.stop()

    assert verdict.violations == [], verdict.violations
    assert verdict.figures["runs"] == len(workload.sent) == verdict.figures["triggers"]
    assert verdict.figures["posts"] > 0
    for loss in losses:
        figures = loss.summary()
        # Producers (upstream's and every relay) and consumers were back: runs triggered after the
        # kill completed, those in flight at the kill too, the lag came back down; within 30 s.
        for key in ("first_run_after_kill_completed_s", "runs_in_flight_completed_s", "lag_back_to_normal_s"):
            assert figures[key] is not None and figures[key] <= RECOVERY_GOAL_S, (key, figures)
        assert figures["upstream_producer_longest_stall_s"] <= RECOVERY_GOAL_S, figures
        # The kill was felt (partitions lost a replica), and the node came back in sync.
        assert figures["under_replicated_while_down"] > 0, figures
        assert figures["all_in_sync_after_restart_s"] is not None, figures
