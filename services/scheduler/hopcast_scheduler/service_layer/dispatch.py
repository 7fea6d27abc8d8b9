"""Which handler takes each event type the scheduler handles: its schedules' and runs' outcomes
(handlers.py) and the stages of runs it follows (runs.py). The consumer's handlers (bound in
bootstrap.py) and the interface (interface.py) both come from this map."""

from __future__ import annotations

from hopcast_scheduler.service_layer import handlers, runs
from hopcast_shared.dispatch import Dispatch

DISPATCH: Dispatch = {**handlers.DISPATCH, **runs.STAGES}
