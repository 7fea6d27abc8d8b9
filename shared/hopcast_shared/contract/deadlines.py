"""scheduler.events about a run past its deadline: the scheduler, which owns runs, tells the
services; whichever holds the run ends it with outcome TIMED_OUT. Its own module, like
deferral.py, to keep `events.py` readable; exported from `hopcast_shared.contract`.
"""

from __future__ import annotations

from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.fields import Id, UtcDatetime


class RunDeadlinePassed(EventData):
    """scheduler: the run is still open at its deadline (its due time plus the configured run
    deadline, time waiting for a reviewer excluded). The service holding the run ends it
    TIMED_OUT on its normal path; nothing is posted after that; a call already started is
    finished and reported."""

    run_id: Id
    schedule_id: Id
    brand_profile_id: Id
    """An addition to DESIGN.md (docs/contract.md): whoever ends the run emits
    ScheduleRunCompleted, which needs it, and may never have seen the run before."""
    due_at: UtcDatetime
    deadline: UtcDatetime
