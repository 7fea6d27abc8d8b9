"""`make bench`: every figure of bench/ on a Kafka and PostgreSQL of its own, into
bench/results/latest.json (a list of rows {name, value, unit, baseline_name, baseline_value, ratio,
command, machine, ...}), one PNG plot per figure in bench/results/plots/, and the figures' table
in bench/README.md.

Each figure is its script run as a process (`.venv/bin/python bench/<script>.py ...`, which is the
row's `command`); the script measures its baseline in the same run. The servers are the pytest
`stack` fixture's (hopcast_stack's TestStack: Kafka and PostgreSQL on free ports in a temporary
folder, removed at the end), or those given with --bootstrap and --database-url.

The duplicate check's precision and recall per embedder (`dedup_quality.py`, key `quality`) need
no server: they are measured on the labelled pairs of bench/data.

The content dedup figures at 1M rows take about half an hour to build: without --full they are
read from the committed bench/results/content_dedup_*.json (their rows say `source` and
`measured_at`); --full measures them again and rewrites those files. The end-to-end script runs
three times on fresh databases and three times on databases with history (bench/history.py:
100,000 runs, 1,000,000 with --full; built once into template databases that the PostgreSQL
started here keeps in bench/.state/postgres): each of its rows is the run with the median value
(every run's in `repeats`), and a `_history` row has its fresh-database figure as baseline.

--quick runs every script at tiny sizes (seconds each) to check the harness, writing to --output
only (a temporary file by default): what `make test` runs (bench/tests).

The sizing table in bench/README.md (between its sizing markers) is computed from the rows'
cost per run (bench/capacity.py); --report-only rewrites it and the figures' table from
--output without measuring (after changing the model's assumptions, say).

Usage: .venv/bin/python bench/run.py [--quick] [--full] [--only NAME,...] [--repeat N] [--output FILE]
       [--bootstrap HOST:PORT --database-url URL] [--no-readme] [--plots DIR] [--report-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import capacity

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PYTHON = ".venv/bin/python"
POSTGRES_HOME = BENCH / ".state" / "postgres"

# Goals on the 2-core machine (issue 10; the publisher's, issue 6; fairness, issue 14; the embedder, issue 21):
# (at least | at most, value).
GOALS: dict[str, tuple[str, float]] = {
    "e2e_runs_per_s": (">=", 200),
    "e2e_p99_ms": ("<=", 1000),
    "e2e_p99_ms_at_100": ("<=", 500),
    "scheduler_claims_per_s": (">=", 5000),
    "ledger_debits_per_s_hot": (">=", 1000),
    "ledger_debits_per_s_uniform": (">=", 3000),
    "dedup_p95_ms_1m": ("<=", 50),
    "dedup_recall_1m": (">=", 0.95),
    "outbox_relay_events_per_s": (">=", 10_000),
    "faststream_vs_aiokafka_ratio": (">=", 0.8),
    "publisher_pending_posts_per_s": (">=", 2000),
    "fairness_other_org_p99_ms": ("<=", 2000),
    "embed_ms_per_draft": ("<=", 3),
    "embed_agreement_min_cosine": (">=", 0.999),
}
REQUIRED = ("name", "value", "unit", "baseline_name", "baseline_value", "ratio", "command", "machine")


@dataclass
class Figure:
    """One script: its arguments (full and quick), which of the rows it prints to keep,
    renamed (None: all, as they are), and how many times it runs (each row is then the run
    with the median value, with every run's value in `repeats`: on this shared machine one
    run can land in a slow minute)."""

    key: str
    script: str
    args: list[str]
    quick: list[str]
    kafka: bool = False
    rename: dict[str, str] | None = None
    timeout_s: float = 900
    repeat: int = 1
    # Arguments with --full instead of `args` (None: the same).
    full: list[str] | None = None


# The CPU flags a figure depends on (the embedder's above all), recorded with the machine.
CPU_VECTOR_UNITS = frozenset(
    {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile"}
)
E2E = ["--seconds", "10", "--burst", "600", "--orgs", "100"]
E2E_QUICK = ["--seconds", "1", "--burst", "20", "--orgs", "12"]
REPLICAS = ["--replicas", "content=2,publisher=2"]
FIGURES = [
    # Sized for make bench on two cores: 500 runs at 50/s, 1,000 at 100/s, then 600 at once, then
    # 600 again with two processes of content and of the publisher; 3 times. The burst's cost per
    # run feeds the sizing table (bench/capacity.py).
    Figure(
        "e2e",
        "e2e.py",
        ["--rates", "50,100", *E2E, *REPLICAS],
        ["--rates", "10,100", *E2E_QUICK, *REPLICAS],
        kafka=True,
        repeat=3,
    ),
    # The same world on databases with history (bench/history.py: built once, kept on the server;
    # cloned for each run): 500 runs at 50/s, then 600 at once; 3 times.
    Figure(
        "e2e",
        "e2e.py",
        ["--rate", "50", *E2E, "--history", "100000"],
        ["--rate", "10", *E2E_QUICK, "--history", "300"],
        kafka=True,
        repeat=3,
        full=["--rate", "50", *E2E, "--history", "1000000"],
        timeout_s=4 * 3600,
    ),
    Figure("outbox", "outbox_relay.py", [], ["--events", "500"], kafka=True),
    Figure("dead_letters", "dead_letters.py", [], ["--records", "300"]),
    Figure("faststream", "faststream_vs_aiokafka.py", [], ["--messages", "500", "--rounds", "1"], kafka=True),
    # 20 bursts of 10,000 events, each waited for (about 4 minutes here).
    Figure("fairness", "fairness.py", [], ["--trials", "2", "--burst", "300"], kafka=True, timeout_s=1800),
    Figure("embedder", "embedder.py", [], ["--drafts", "32", "--reference-drafts", "4", "--rounds", "1"]),
    Figure("scheduler", "scheduler_claims.py", [], ["--schedules", "2000", "--batch", "200"]),
    Figure("ledger", "billing_ledger.py", ["--debits", "10000"], ["--debits", "200", "--batch", "50"]),
    Figure(
        "publisher",
        "publisher_throughput.py",
        [],
        ["--posts", "100", "--batch-size", "50"],
        rename={"publisher_pending_posts_per_s": "publisher_pending_posts_per_s"},
    ),
    # Precision and recall of the duplicate check per embedder over bench/data's labelled pairs
    # (no server); quick: the whole set with hashing, 12 pairs with the semantic embedder.
    Figure("quality", "dedup_quality.py", [], ["--semantic-pairs", "12"]),
]
# Scripts that need no database (the others get --database-url).
NO_DATABASE = {"faststream_vs_aiokafka.py", "dedup_quality.py"}
# content_dedup.py at a size, and the names its rows get here.
DEDUP = {
    "1m": ["--rows", "1000000"],
    "100k": ["--rows", "100000"],
}
DEDUP_QUICK = ["--rows", "2000", "--orgs", "20", "--queries", "20", "--maintenance-work-mem", "64MB"]


def dedup_rows(result: dict[str, Any], size: str) -> list[dict[str, Any]]:
    """dedup_p95_ms_<size> (the whole check as the service runs it, beside the bare exact
    nearest-neighbour query) and dedup_recall_<size> (the service's search against exact)."""
    base = {"rows": result["rows"], "orgs": result["orgs"], "dim": result["dim"]}
    check, exact = result["dedup_check_ms"], result["nearest_exact_ms"]
    return [
        {
            "name": f"dedup_p95_ms_{size}",
            "value": check["p95"],
            "unit": "ms",
            "baseline_name": "nearest_exact_ms_p95",
            "baseline_value": exact["p95"],
            "ratio": round(check["p95"] / exact["p95"], 3),
            "p50_ms": check["p50"],
            "hnsw_iterative_p95_ms": result["nearest_hnsw_iterative_ms"]["p95"],
            **base,
        },
        {
            "name": f"dedup_recall_{size}",
            "value": result["auto_recall_at_10"],
            "unit": "recall@10",
            "baseline_name": "exact_search",
            "baseline_value": 1.0,
            "ratio": result["auto_recall_at_10"],
            "hnsw_iterative_recall_at_10": result["hnsw_iterative_recall_at_10"],
            **base,
        },
    ]


# --- the machine -------------------------------------------------------------------------------


def machine(database_url: str) -> dict[str, Any]:
    import asyncpg
    import psutil

    from hopcast_stack.config import StackSettings
    from hopcast_stack.kafka_jars import kafka_version

    async def postgres_version() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    model, flags = "", set[str]()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": model or platform.processor(),
        # What the embedder's figure hangs on: bf16 units (AMX, AVX-512 BF16) or not.
        "cpu_vector_units": sorted(flags & CPU_VECTOR_UNITS),
        "python": platform.python_version(),
        "postgres": asyncio.run(postgres_version()),
        "kafka": kafka_version(StackSettings().state_dir / "kafka" / "libs"),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- running the scripts -----------------------------------------------------------------------


@dataclass
class Harness:
    bootstrap: str
    database_url: str
    quick: bool
    # The broker's credentials file where it has SCRAM and ACLs on (common.CREDENTIALS_ENV).
    credentials: Path | None = None
    log: Callable[[str], None] = print
    failures: list[str] = field(default_factory=list)
    # Runs of each figure instead of its own `repeat` (--repeat).
    repeat: int | None = None

    def script(self, script: str, args: Sequence[str], *, kafka: bool, timeout_s: float) -> tuple[list[Any], str]:
        """Run one script; returns the JSON lines it printed and the command that reproduces it
        (against the local stack: `make infra-up`)."""
        shown = [PYTHON, f"bench/{script}", *args]
        address = ["--database-url", self.database_url] if script not in NO_DATABASE else []
        if kafka:
            address += ["--bootstrap", self.bootstrap]
        started = time.monotonic()
        self.log(f"bench: {shlex.join(shown)}")
        env = {**os.environ, **({"HOPCAST_KAFKA_CREDENTIALS": str(self.credentials)} if self.credentials else {})}
        done = subprocess.run(
            [sys.executable, str(BENCH / script), *args, *address],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(shown)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        self.log(f"bench:   {len(rows)} row(s) in {time.monotonic() - started:.0f}s")
        return rows, shlex.join(shown)

    def figure(self, fig: Figure, *, full: bool = False) -> list[dict[str, Any]]:
        args = fig.quick if self.quick else (fig.full if full and fig.full else fig.args)
        runs = [
            self.script(fig.script, args, kafka=fig.kafka, timeout_s=fig.timeout_s)
            for _ in range(1 if self.quick else fig.repeat if self.repeat is None else self.repeat)
        ]
        command = runs[0][1]
        rows = median_rows([rows for rows, _ in runs]) if len(runs) > 1 else runs[0][0]
        out = []
        for row in rows:
            if fig.rename is not None:
                if row.get("name") not in fig.rename:
                    continue
                row["name"] = fig.rename[row["name"]]
            out.append({**row, "command": command, **({"quick": True} if self.quick else {})})
        return out

    def dedup(self, full: bool) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        if self.quick:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "dedup.json"
                _, command = self.script(
                    "content_dedup.py", [*DEDUP_QUICK, "--output", str(out)], kafka=False, timeout_s=300
                )
                result = json.loads(out.read_text())
            for size in DEDUP:
                rows += [{**r, "command": command, "quick": True} for r in dedup_rows(result, size)]
            return rows
        for size, args in DEDUP.items():
            path = RESULTS / f"content_dedup_{size}.json"
            relative = path.relative_to(ROOT)
            command = shlex.join([PYTHON, "bench/content_dedup.py", *args, "--output", str(relative)])
            if full:
                _, command = self.script(
                    "content_dedup.py", [*args, "--output", str(relative)], kafka=False, timeout_s=4 * 3600
                )
                source = {"source": "measured now"}
            else:
                source = {"source": str(relative), "measured_at": _committed_at(path)}
            result = json.loads(path.read_text())
            rows += [{**r, "command": command, **source} for r in dedup_rows(result, size)]
        return rows


def median_rows(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per row name, the row of the run whose value is the median, with every run's value
    (in the order they ran) in `repeats`."""
    out = []
    for row in runs[0]:
        same = [r for rows in runs for r in rows if r["name"] == row["name"]]
        ranked = sorted(same, key=lambda r: r["value"])
        out.append({**ranked[(len(ranked) - 1) // 2], "repeats": [r["value"] for r in same]})
    return out


def beside_fresh(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The end-to-end figures on databases with history (`*_history`) have the same figure on
    fresh databases of this run as their baseline (the broker's own stays in the row)."""
    by_name = {row["name"]: row for row in rows}
    out = []
    for row in rows:
        fresh = by_name.get(row["name"].removesuffix("_history"))
        if row["name"].endswith("_history") and fresh is not None:
            row = {
                **row,
                "broker_baseline_name": row["baseline_name"],
                "broker_baseline_value": row["baseline_value"],
                "baseline_name": f"{fresh['name']} (fresh databases)",
                "baseline_value": fresh["value"],
                "ratio": round(row["value"] / fresh["value"], 3) if fresh["value"] else None,
            }
        out.append(row)
    return out


def _committed_at(path: Path) -> str:
    done = subprocess.run(
        ["git", "log", "-1", "--format=%cI", "--", str(path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "uncommitted"


def with_goals(row: dict[str, Any]) -> dict[str, Any]:
    goal = GOALS.get(row["name"])
    if goal is not None and isinstance(row.get("value"), int | float):
        op, target = goal
        row["goal"] = f"{op} {target:g}"
        row["goal_met"] = row["value"] >= target if op == ">=" else row["value"] <= target
    return row


def check_rows(rows: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the rows (empty: well-formed)."""
    problems = []
    names = [r.get("name") for r in rows]
    for row in rows:
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            problems.append(f"{row.get('name')}: missing {missing}")
        for key in ("value", "baseline_value"):
            if not isinstance(row.get(key), int | float):
                problems.append(f"{row.get('name')}: {key} is not a number: {row.get(key)!r}")
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        problems.append(f"duplicate names: {sorted(duplicates)}")
    return problems


# --- plots and the report ----------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    """One PNG per figure; returns name -> file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for row in rows:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        name = row["name"]
        if name in ("e2e_p50_ms", "e2e_p99_ms"):
            latencies = next((r.get("latencies_ms") for r in rows if r["name"] == "e2e_p50_ms"), None) or []
            _latency_plot(ax, latencies, row)
        elif name == "e2e_runs_per_s" and row.get("completions_s"):
            done = row["completions_s"]
            ax.step(done, range(1, len(done) + 1), where="post", label=f"runs completed ({row['value']:g} runs/s)")
            ax.set_xlabel("seconds since the burst was sent")
            ax.set_ylabel("runs completed")
            if "goal" in row:
                end = done[-1] if done else 1
                target = GOALS["e2e_runs_per_s"][1]
                ax.plot([0, end], [0, target * end], "--", color="grey", label=f"goal: {target:g} runs/s")
                ax.set_ylim(0, len(done) * 1.1)
            ax.legend(loc="lower right", fontsize=8)
        elif name.startswith("dedup_recall_") and "cosines" in row:
            _cosine_plot(ax, row)
        elif name.startswith("replica_share_") and row.get("runs_by_replica"):
            shares = row["runs_by_replica"]
            _bars(ax, list(shares), list(shares.values()), "runs handled in the burst", goal=None, goal_label="")
        elif name == "faststream_vs_aiokafka_ratio" and "faststream_messages_per_s" in row:
            labels = ["raw aiokafka loop", "FastStream subscriber"]
            values = [row["aiokafka_messages_per_s"], row["faststream_messages_per_s"]]
            _bars(ax, labels, values, "messages/s", goal=0.8 * values[0], goal_label="goal: 0.8 x raw")
        else:
            goal = GOALS.get(name)
            _bars(
                ax,
                [row["baseline_name"], name],
                [row["baseline_value"], row["value"]],
                row["unit"],
                goal=goal[1] if goal else None,
                goal_label=f"goal: {goal[0]} {goal[1]:g}" if goal else "",
            )
        ax.set_title(f"{name} (ratio {row['ratio']})", fontsize=10)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        files[name] = path
    return files


def _bars(ax: Any, labels: list[str], values: list[float], unit: str, *, goal: float | None, goal_label: str) -> None:
    bars = ax.barh(labels, values, color=["#999999", "#3b75af"])
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:g}", va="center", fontsize=8)
    if goal is not None:
        ax.axvline(goal, linestyle="--", color="#c44e52", label=goal_label)
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(unit)
    ax.set_xlim(0, max([*values, goal or 0]) * 1.25 or 1)


def _cosine_plot(ax: Any, row: dict[str, Any]) -> None:
    """Each labelled pair's cosine under the embedder, by label, with the contract's threshold
    and the set's best-F1 threshold."""
    for y, (label, color) in enumerate((("distinct", "#999999"), ("paraphrase", "#3b75af"))):
        values = row["cosines"][label]
        ax.scatter(values, [y + 0.25 * ((i % 5) - 2) / 2 for i in range(len(values))], s=12, color=color, alpha=0.8)
    ax.axvline(row["threshold"], linestyle="--", color="#c44e52", label=f"threshold {row['threshold']:g}")
    best = row["best_f1"]["threshold"]
    ax.axvline(best, linestyle=":", color="#55a868", label=f"best F1 on the set {best:g}")
    ax.set_yticks([0, 1], [f"distinct ({len(row['cosines']['distinct'])})", f"paraphrase ({row['paraphrase_pairs']})"])
    ax.set_xlabel(f"cosine of the pair ({row['embedder']}); flagged: above the threshold")
    ax.set_xlim(min(0.0, *row["cosines"]["distinct"], *row["cosines"]["paraphrase"]), 1.0)
    ax.legend(loc="lower left", fontsize=8)


def _latency_plot(ax: Any, latencies: list[float], row: dict[str, Any]) -> None:
    if latencies:
        ax.plot(sorted(latencies), [100 * (i + 1) / len(latencies) for i in range(len(latencies))], label="runs")
    ax.axvline(row["value"], color="#3b75af", linestyle=":", label=f"{row['name']} = {row['value']:g} ms")
    ax.axvline(1000, linestyle="--", color="#c44e52", label="p99 goal: 1000 ms")
    ax.set_xlabel(f"trigger -> ScheduleRunCompleted, ms (offered {row.get('offered_runs_per_s', '?')} runs/s)")
    ax.set_ylabel("% of runs")
    ax.legend(loc="lower right", fontsize=8)


BEGIN, END = "<!-- figures:begin (bench/run.py writes this part) -->", "<!-- figures:end -->"
SIZING_BEGIN, SIZING_END = "<!-- sizing:begin (bench/run.py writes this part) -->", "<!-- sizing:end -->"


def report(rows: list[dict[str, Any]], plots: dict[str, Path], readme: Path) -> None:
    """The figures' table and plots in bench/README.md, between the markers (the rest is prose)."""
    m = rows[0]["machine"] if rows else {}
    lines = [
        BEGIN,
        "",
        f"Measured by `make bench` on {m.get('cores')} cores ({m.get('cpu_model')}; "
        f"{capacity.vector_units(m)}), {m.get('ram_gb')} GB, "
        f"Python {m.get('python')}, PostgreSQL {m.get('postgres')}, Kafka {m.get('kafka')}; load average "
        f"{m.get('load_average_at_start')} at the start (the machine is shared: compare ratios). "
        "Every row, with its details, is in [`results/latest.json`](results/latest.json).",
        "",
        "| figure | value | baseline (same run) | ratio | goal | met | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**"}.get(row.get("goal_met"), "")
        source = f" (from `{row['source']}`, {row['measured_at'][:10]})" if "measured_at" in row else ""
        lines.append(
            f"| {row['name']} | {row['value']:g} {row['unit']} | {row['baseline_name']}: {row['baseline_value']:g} | "
            f"{row['ratio']} | {row.get('goal', '')} | {met} | `{row['command']}`{source} |"
        )
    lines += ["", "### Plots", ""]
    for name, path in plots.items():
        lines += [f"**{name}**", "", f"![{name}]({path.relative_to(readme.parent).as_posix()})", ""]
    lines.append(END)
    text = readme.read_text() if readme.exists() else ""
    block = "\n".join(lines)
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Figures\n\n" + block + "\n"
    if SIZING_BEGIN in text and SIZING_END in text:
        sizing = f"{SIZING_BEGIN}\n\n{capacity.markdown(rows)}\n\n{SIZING_END}"
        text = re.sub(re.escape(SIZING_BEGIN) + r".*?" + re.escape(SIZING_END), lambda _: sizing, text, flags=re.S)
    readme.write_text(text)


# --- main --------------------------------------------------------------------------------------


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a number of runs")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, measures nothing")
    parser.add_argument("--full", action="store_true", help="also measure the content dedup figures (hours)")
    parser.add_argument("--only", default="", help="comma-separated figure keys: " + ",".join(f.key for f in FIGURES))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--repeat", type=_at_least_one, default=None, help="runs of each figure (default: each figure's own, 3 for e2e)"
    )
    parser.add_argument("--plots", type=Path, default=None)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: the plots and bench/README.md's tables from --output (results/latest.json)",
    )
    parser.add_argument("--bootstrap", default=None, help="a Kafka to use instead of starting one")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to use instead of starting one")
    parser.add_argument(
        "--credentials", type=Path, default=None, help="that Kafka's credentials.json (a broker with SCRAM and ACLs)"
    )
    args = parser.parse_args()
    if (args.bootstrap is None) != (args.database_url is None):
        parser.error("give both --bootstrap and --database-url, or neither")
    tmp = Path(tempfile.mkdtemp(prefix="hopcast-bench-")) if args.quick else None
    output = args.output or (tmp / "latest.json" if tmp else RESULTS / "latest.json")
    plots_dir = args.plots or (output.parent / "plots" if tmp or args.output else RESULTS / "plots")
    only = {k for k in args.only.split(",") if k}
    if args.report_only:
        rows = json.loads(output.read_text())
        report(rows, plot(rows, plots_dir), BENCH / "README.md")
        print(f"bench: the plots and bench/README.md's tables from {output}")
        return 0

    stack = None
    if args.bootstrap is None:
        from hopcast_stack.pytest_plugin import TestStack

        # PostgreSQL's cluster stays in bench/.state/postgres: the templates with history
        # (history.py) are built once and kept there.
        stack = TestStack.in_new_folder(postgres_home=POSTGRES_HOME)
        if stack.postgres.is_running():  # left by a bench that was killed: it listens elsewhere
            stack.postgres.stop()
        print(f"bench: starting Kafka and PostgreSQL of its own in {stack.state_dir} and {POSTGRES_HOME}", flush=True)
        asyncio.run(stack.start())
        bootstrap, database_url = stack.kafka_bootstrap, stack.database_url("postgres")
        credentials: Path | None = stack.kafka.credentials.path
    else:
        bootstrap, database_url, credentials = args.bootstrap, args.database_url, args.credentials
    try:
        began = time.monotonic()
        harness = Harness(
            bootstrap,
            database_url,
            args.quick,
            log=lambda s: print(s, flush=True),
            credentials=credentials,
            repeat=args.repeat,
        )
        facts = machine(database_url)
        rows: list[dict[str, Any]] = []
        for fig in FIGURES:
            if only and fig.key not in only:
                continue
            try:
                rows += harness.figure(fig, full=args.full)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                harness.failures.append(f"{fig.key}: {exc}")
                print(f"bench: {fig.key} FAILED: {exc}", file=sys.stderr, flush=True)
        if not only or "dedup" in only:
            try:
                rows += harness.dedup(args.full)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                harness.failures.append(f"dedup: {exc}")
                print(f"bench: dedup FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        if stack is not None:
            stack.remove()
    rows = [with_goals({**row, "machine": facts}) for row in beside_fresh(rows)]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=1) + "\n")
    plots = plot(rows, plots_dir)
    if not args.no_readme and not args.quick:
        report(rows, plots, BENCH / "README.md")
    print(f"bench: {len(rows)} rows in {output} ({time.monotonic() - began:.0f}s), plots in {plots_dir}")
    for row in rows:
        met = {True: "met", False: "MISSED"}.get(row.get("goal_met"), "")
        print(f"  {row['name']:34} {row['value']:>12g} {row['unit']:10} ratio {row['ratio']}  {met}")
    problems = check_rows(rows) + harness.failures
    for problem in problems:
        print(f"bench: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
