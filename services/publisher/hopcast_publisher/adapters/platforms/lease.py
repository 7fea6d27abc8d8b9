"""What an adapter asks immediately before each call that may create a post: does this worker
still hold the pending post's lease, for long enough to cover the whole call? The publishing
loop's `LeaseKeeper` answers (`entrypoints/lease_keeper.py`); a request made outside the loop
(the adapters' own tests, a script) carries no lease and is not asked about.
"""

from __future__ import annotations

from typing import Protocol


class LeaseLost(Exception):
    """The pending post's lease is gone, or would not outlast the call: the call is not sent.
    Another worker holds the post now, or will claim it, and looks it up before any call."""


class HeldLease(Protocol):
    async def confirm(self, call_s: float) -> None:
        """Return when the lease is held for at least `call_s` more seconds (renewing it first
        when it is close to its end); raise LeaseLost when it is not."""
