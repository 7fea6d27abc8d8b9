"""The sizing table turns a run's measured cost into cores, processes, database and broker load
and partitions the way bench/README.md says it does, and bench/run.py writes it between the
README's sizing markers from the rows it is given."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1]


def _bench_module(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


capacity = _bench_module("capacity")
SERVICES = ("scheduler", "content", "billing", "publisher")


def cost_rows(cpu_ms: dict[str, float], db_ms: dict[str, float]) -> list[dict[str, Any]]:
    machine = {"cpu_model": "Test CPU", "cores": 2}
    rows: list[dict[str, Any]] = [
        {"name": f"cost_cpu_ms_per_run_{s}", "value": cpu_ms[s], "content_embedder": "minilm", "machine": machine}
        for s in SERVICES
    ]
    rows += [
        {
            "name": f"cost_db_cpu_ms_per_run_{s}",
            "value": db_ms[s],
            "transactions_per_run": 4.0,
            "bytes_per_run": 2500.0,
            **({"embeddings_per_run": 2.0} if s == "content" else {}),
            "machine": machine,
        }
        for s in SERVICES
    ]
    rows.append(
        {
            "name": "kafka_bytes_per_run",
            "value": 12_000,
            "records_per_run": 11.0,
            "read_bytes_per_run": 36_000,
            "platforms": ["MASTODON", "BLUESKY"],
            "machine": machine,
        }
    )
    return rows


CPU = {"scheduler": 4.0, "content": 10.0, "billing": 3.0, "publisher": 5.0}
DB = {"scheduler": 2.0, "content": 3.0, "billing": 1.0, "publisher": 1.5}


def test_the_peak_of_100k_organizations_posting_33_times_a_day_and_what_it_takes() -> None:
    costs = capacity.Costs.from_rows(cost_rows(CPU, DB))
    s = capacity.size(costs, 100_000, 33, capacity.Assumptions())

    assert s.runs_per_day == 3_300_000
    assert s.average_runs_s == pytest.approx(38.19, abs=0.01)
    assert s.peak_runs_s == pytest.approx(381.9, abs=0.1)
    # content: 381.9 runs/s x 10 ms = 3.82 cores busy, at most 60% of what it has: 6.37 cores, 7 processes.
    assert s.cores["content"] == pytest.approx(6.37, abs=0.01)
    assert s.replicas["content"] == 7
    assert s.replicas["billing"] == 2  # 1.91 cores, but never fewer than two processes
    # Partitions: twice the largest group (14), rounded up to the next step.
    assert s.partitions == 24
    assert s.db_cores["content"] == pytest.approx(381.9 * 0.003 / 0.6, rel=1e-3)
    assert s.db_transactions_s["scheduler"] == pytest.approx(4 * 381.9, rel=1e-3)
    assert s.db_growth_gb_year == pytest.approx(3_300_000 * 365 * 4 * 2500 / 1e9, rel=1e-6)
    assert s.embeddings_kept == 3_300_000 * 30 * 2
    assert s.kafka_in_mb_s == pytest.approx(381.9 * 12_000 / 1e6, rel=1e-3)
    assert s.kafka_out_mb_s == pytest.approx(381.9 * 36_000 / 1e6, rel=1e-3)
    assert s.kafka_stored_gb == pytest.approx(3_300_000 * 7 * 12_000 * 3 / 1e9, rel=1e-6)


def test_the_cpu_per_run_is_the_larger_of_the_bursts_and_the_fixed_rates() -> None:
    rows = cost_rows(CPU, DB)
    rows[1]["cpu_ms_per_run_at_50_runs_per_s"] = 15.0  # content, in smaller batches
    rows[0]["cpu_ms_per_run_at_50_runs_per_s"] = 1.0  # scheduler: a noisy, smaller figure
    costs = capacity.Costs.from_rows(rows)
    assert costs.cpu_ms["content"] == 15.0
    assert costs.cpu_ms["scheduler"] == 4.0


def test_a_small_deployment_keeps_two_processes_and_the_default_partitions() -> None:
    costs = capacity.Costs.from_rows(cost_rows(CPU, DB))
    s = capacity.size(costs, 1_000, 5, capacity.Assumptions())
    assert s.peak_runs_s == pytest.approx(0.579, abs=0.001)
    assert set(s.replicas.values()) == {2}
    assert s.partitions == 6


def test_the_table_has_a_line_per_scale_and_says_what_it_assumed() -> None:
    text = capacity.markdown(cost_rows(CPU, DB))
    for orgs, posts in capacity.SCALES:
        assert text.count(f"| {orgs:,} x {posts} |") == 4, (orgs, posts)
    assert "peak-to-average 10" in text and "60%" in text and "Test CPU" in text and "`minilm`" in text


def test_without_the_cost_rows_there_is_no_table() -> None:
    text = capacity.markdown([{"name": "e2e_runs_per_s", "value": 200}])
    assert "no sizing table" in text


def test_the_report_writes_the_sizing_table_between_its_markers(tmp_path: Path) -> None:
    run = _bench_module("run")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Prose\n\n{run.SIZING_BEGIN}\nold table\n{run.SIZING_END}\n\nmore prose\n")
    rows = [
        {**row, "unit": "ms", "baseline_name": "b", "baseline_value": 1, "ratio": 1, "command": "c"}
        for row in cost_rows(CPU, DB)
    ]
    run.report(rows, {}, readme)
    text = readme.read_text()
    assert "old table" not in text
    assert "| 100,000 x 33 | 3,300,000 | 38.2 | 382 |" in text
    assert text.index(run.SIZING_BEGIN) < text.index("| 100,000 x 33 |") < text.index(run.SIZING_END)
    assert text.startswith("# Prose") and "more prose" in text
