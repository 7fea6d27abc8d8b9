"""Scheduler-only settings (the rest comes from the kernel's ServiceSettings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", extra="ignore")

    tick_interval_s: float = Field(default=1.0, gt=0, le=3600)
    claim_batch_size: int = Field(default=1000, ge=1, le=50_000)
    # How often the purge job deletes what was soft-deleted more than SCHEDULER_RETENTION_DAYS ago.
    purge_interval_s: float = Field(default=3600.0, gt=0)
    # A run still open this long after its start (the later of its due time and its creation;
    # time waiting for a reviewer excluded) times out: RunDeadlinePassed, outcome TIMED_OUT.
    run_deadline_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    # How often the deadline watch looks for open runs past their deadline.
    deadline_check_interval_s: float = Field(default=5.0, gt=0, le=3600)
    deadline_batch_size: int = Field(default=500, ge=1, le=50_000)
