"""`make bench` never rots: bench/run.py --quick runs every figure's script at tiny sizes on the
session's broker and database, and the rows it writes are well-formed, each with its plot. What
the numbers are is not asserted (a timing on a shared machine proves nothing)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hopcast_stack.pytest_plugin import TestStack

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

BENCH = Path(__file__).resolve().parents[1]
FIGURES = {
    "e2e_runs_per_s",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "e2e_p99_ms_at_100",
    "e2e_runs_per_s_history",
    "e2e_p99_ms_history",
    "scheduler_claims_per_s",
    "ledger_debits_per_s_hot",
    "ledger_debits_per_s_uniform",
    "dedup_p95_ms_1m",
    "dedup_recall_1m",
    "dedup_p95_ms_100k",
    "dedup_recall_100k",
    "outbox_relay_events_per_s",
    "dead_letters_per_s",
    "faststream_vs_aiokafka_ratio",
    "publisher_pending_posts_per_s",
    "fairness_other_org_p99_ms",
    *(f"dedup_{figure}_{embedder}" for figure in ("precision", "recall") for embedder in ("hashing", "minilm")),
    *(f"rss_mb_{name}" for name in ("scheduler", "content", "billing", "publisher")),
    *(f"cost_cpu_ms_per_run_{name}" for name in ("scheduler", "content", "billing", "publisher")),
    *(f"cost_db_cpu_ms_per_run_{name}" for name in ("scheduler", "content", "billing", "publisher")),
    "kafka_bytes_per_run",
    "e2e_runs_per_s_two_replicas",
    "replica_share_content",
    "replica_share_publisher",
}
MACHINE = {"cores", "ram_gb", "cpu_model", "cpu_vector_units", "python", "postgres", "kafka"}


def test_quick_bench_writes_a_well_formed_row_and_a_plot_per_figure(stack: TestStack, tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--output",
            str(output),
            "--bootstrap",
            stack.kafka_bootstrap,
            "--credentials",
            str(stack.kafka.credentials.path),
            "--database-url",
            stack.database_url("postgres"),
        ],
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    rows = json.loads(output.read_text())
    assert isinstance(rows, list)
    by_name = {row["name"]: row for row in rows}
    assert len(by_name) == len(rows), "a figure twice"
    assert set(by_name) >= FIGURES
    for row in rows:
        for key in ("value", "baseline_value", "ratio"):
            assert isinstance(row[key], int | float) and math.isfinite(row[key]), (row["name"], key, row[key])
        assert isinstance(row["unit"], str) and row["unit"]
        assert isinstance(row["baseline_name"], str) and row["baseline_name"]
        assert row["command"].startswith(".venv/bin/python bench/"), row["command"]
        assert set(row["machine"]) >= MACHINE and row["machine"]["cores"] >= 1
        plot = tmp_path / "plots" / f"{row['name']}.png"
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    for name in (
        "e2e_p99_ms",
        "e2e_p99_ms_at_100",
        "outbox_relay_events_per_s",
        "faststream_vs_aiokafka_ratio",
        "dedup_recall_1m",
        "fairness_other_org_p99_ms",
    ):
        assert isinstance(by_name[name]["goal_met"], bool) and by_name[name]["goal"]
    # Every run the quick e2e triggered came to an end, on fresh databases and on clones with history.
    for name in ("e2e_runs_per_s", "e2e_runs_per_s_history"):
        assert by_name[name]["completed"] == by_name[name]["runs"], name
    # The history figure stands beside the fresh one of the same run, and says what it ran on.
    history = by_name["e2e_runs_per_s_history"]
    assert history["baseline_value"] == by_name["e2e_runs_per_s"]["value"]
    assert history["history"]["rows"]["content"]["content_embeddings"] > history["history"]["drafts"]
    # And so did every run of the burst sent again with two processes of content and of the
    # publisher, each run counted by one of them.
    two = by_name["e2e_runs_per_s_two_replicas"]
    assert two["completed"] == two["runs"]
    for name in ("content", "publisher"):
        assert set(two["runs_by_replica"][name]) == {name, f"{name}-2"}
        assert sum(two["runs_by_replica"][name].values()) >= two["completed"], two["runs_by_replica"]
    # A run put its trigger and at least one event of each service on Kafka.
    kafka = by_name["kafka_bytes_per_run"]
    assert kafka["value"] > kafka["baseline_value"] > 0
    assert {"upstream.events", "scheduler.events", "content.events", "publisher.events"} <= set(
        kafka["bytes_per_run_by_topic"]
    )


def test_a_repeated_figure_keeps_each_rows_median_run() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from run import median_rows
    finally:
        sys.path.remove(str(BENCH))
    runs = [
        [{"name": "a", "value": 3.0, "run": 1}, {"name": "b", "value": 9.0, "run": 1}],
        [{"name": "a", "value": 1.0, "run": 2}, {"name": "b", "value": 7.0, "run": 2}],
        [{"name": "a", "value": 2.0, "run": 3}, {"name": "b", "value": 8.0, "run": 3}],
    ]
    assert median_rows(runs) == [
        {"name": "a", "value": 2.0, "run": 3, "repeats": [3.0, 1.0, 2.0]},
        {"name": "b", "value": 8.0, "run": 3, "repeats": [9.0, 7.0, 8.0]},
    ]
