"""The scheduler's own metrics, beside the kernel's."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS_FIRED = Counter("hopcast_scheduler_runs_fired_total", "ScheduleDue events written (runs started)")
MISSED_RUNS = Counter(
    "hopcast_scheduler_missed_runs_total", "Runs found more than ten minutes late", ["missed_run_policy"]
)
DUE_BACKLOG = Gauge("hopcast_scheduler_due_backlog", "Active schedules whose next run is due and not yet claimed")
