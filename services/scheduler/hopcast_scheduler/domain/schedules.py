"""A schedule as the service layer sees it: what the adapters load, whatever the driver."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from hopcast_scheduler.domain.recurrence import Recurrence


@dataclass(frozen=True)
class Schedule:
    id: uuid.UUID
    organization_id: uuid.UUID
    brand_profile_id: uuid.UUID
    timezone: str
    times: tuple[str, ...]
    days_of_week: tuple[int, ...]
    platforms: tuple[str, ...]
    missed_run_policy: str
    is_active: bool
    status: str
    next_run_at: datetime | None
    consecutive_errors: int = 0
    missed_runs: int = 0
    last_outcome: str | None = None
    last_run_at: datetime | None = None
    deleted_at: datetime | None = None

    def recurrence(self) -> Recurrence:
        return Recurrence.parse(self.timezone, self.times, self.days_of_week)
