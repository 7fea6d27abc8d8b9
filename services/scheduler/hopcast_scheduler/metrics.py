"""The scheduler's own metrics, beside the kernel's."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS_FIRED = Counter("hopcast_scheduler_runs_fired_total", "ScheduleDue events written (runs started)")
MISSED_RUNS = Counter(
    "hopcast_scheduler_missed_runs_total", "Runs found more than ten minutes late", ["missed_run_policy"]
)
DUE_BACKLOG = Gauge("hopcast_scheduler_due_backlog", "Active schedules whose next run is due and not yet claimed")
DEADLINES_PASSED = Counter(
    "hopcast_scheduler_run_deadlines_passed_total", "RunDeadlinePassed events written (runs past their deadline)"
)
RUNS_OPEN_PAST_DEADLINE = Gauge(
    "hopcast_scheduler_runs_open_past_deadline",
    "Open runs past their deadline (not waiting for a reviewer), by how far: 1 = past it, 2 = past twice it",
    ["multiple"],
)
