"""The leases one publisher process holds on pending posts, kept alive while their calls wait.

A round claims its posts with a lease of `lease_s` (`claim_publishing`) and hands them to the
keeper (`hold`). While any is held, one heartbeat renews them all every `lease_s / 3` in one
statement (`adapters/leases.renew_leases`), however many rounds hold them; a round gives its
posts back once it has completed them (`release`), also when it is cancelled.

What the keeper knows is on this process's monotonic clock, and always on the safe side: a
lease is taken to last `lease_s` from just before the statement that granted or renewed it was
sent, so the database's `lease_until` is at least that late (no two hosts' clocks are
compared). An adapter confirms a post's lease immediately before each call that may create
the post (`HeldLease.confirm`), for the longest that call may take (the adapter cuts it off
there) plus `lease_margin_s`; when less is left it renews at once and looks again. A lease
that is lost, or that could not be renewed (the database unreachable), fails the
confirmation: the call is not sent and the round drops the post, which another worker claims
once its lease has run out and looks up on the platform before any call. So no queued call
runs after its lease was lost, and no other worker can claim a post while a call of ours
may still be creating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from hopcast_publisher import metrics
from hopcast_publisher.adapters.leases import renew_leases
from hopcast_publisher.adapters.platforms.lease import LeaseLost
from hopcast_shared.db import Database

log = logging.getLogger(__name__)


@dataclass
class _Lease:
    token: uuid.UUID
    until: float
    """On the keeper's clock: the lease holds at least until then."""


@dataclass(frozen=True)
class PostLease:
    """One pending post's lease, as an adapter confirms it (`HeldLease`)."""

    keeper: LeaseKeeper
    pending_post_id: uuid.UUID
    before_call: Callable[[], Awaitable[None]] | None = None
    """Run once the lease is confirmed and before the call is sent (the loop records the
    call there); the lease is confirmed again after it, so it cannot eat the margin."""

    def with_before_call(self, before_call: Callable[[], Awaitable[None]]) -> PostLease:
        return PostLease(self.keeper, self.pending_post_id, before_call)

    async def confirm(self, call_s: float) -> None:
        await self.keeper.confirm(self.pending_post_id, call_s)
        if self.before_call is not None:
            await self.before_call()
            await self.keeper.confirm(self.pending_post_id, call_s)


class LeaseKeeper:
    """Every lease of one process, renewed together while any is held."""

    def __init__(
        self, db: Database, *, lease_s: float, margin_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self.lease_s = lease_s
        self._margin_s = margin_s
        self.clock = clock
        self._held: dict[uuid.UUID, _Lease] = {}
        self._renewal: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.renewals = 0
        """Renewal statements run (what the benchmark and the tests read)."""

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    def hold(self, token: uuid.UUID, pending_post_ids: Iterable[uuid.UUID], *, since: float) -> None:
        """Leases just granted under `token` by a statement sent at `since` (this clock)."""
        for pending_post_id in pending_post_ids:
            self._held[pending_post_id] = _Lease(token, since + self.lease_s)
        if self._held and (self._heartbeat is None or self._heartbeat.done()):
            self._heartbeat = asyncio.create_task(self._beat(), name="publishing lease heartbeat")

    def release(self, pending_post_ids: Iterable[uuid.UUID]) -> None:
        """No longer held by this process (completed, dropped, or the round stopped)."""
        for pending_post_id in pending_post_ids:
            self._held.pop(pending_post_id, None)
        if not self._held and self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def lease(self, pending_post_id: uuid.UUID) -> PostLease:
        return PostLease(self, pending_post_id)

    def left_s(self, pending_post_id: uuid.UUID) -> float:
        """How long the lease surely holds still (minus infinity: not held)."""
        lease = self._held.get(pending_post_id)
        return -math.inf if lease is None else lease.until - self.clock()

    async def confirm(self, pending_post_id: uuid.UUID, call_s: float) -> None:
        """Return if the lease holds for `call_s` and the margin more, renewing it first when it
        does not; else forget it and raise LeaseLost."""
        needed = call_s + self._margin_s
        if self.left_s(pending_post_id) >= needed:
            return
        await self.renew()
        if self.left_s(pending_post_id) >= needed:
            return
        self._held.pop(pending_post_id, None)
        metrics.LEASES_LOST.inc()
        raise LeaseLost(f"the lease of pending post {pending_post_id} is lost or ends within {needed:.1f}s")

    async def renew(self) -> None:
        """Renew every held lease in one statement; whoever asks while one runs shares it."""
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.create_task(self._renew_once(), name="publishing lease renewal")
        await asyncio.shield(self._renewal)

    async def _renew_once(self) -> None:
        tokens = {pending_post_id: lease.token for pending_post_id, lease in self._held.items()}
        if not tokens:
            return
        started = self.clock()
        try:
            async with self._db.transaction() as conn:
                renewal = await renew_leases(conn, list(tokens.items()), lease_s=self.lease_s)
        except Exception as exc:
            # The leases run out on their own; confirmations fail once too little is left.
            log.warning("renewing %d publishing leases failed: %s", len(tokens), type(exc).__name__)
            return
        self.renewals += 1
        for pending_post_id in renewal.renewed:
            lease = self._held.get(pending_post_id)
            if lease is not None and lease.token == tokens[pending_post_id]:
                lease.until = max(lease.until, started + self.lease_s)
        for pending_post_id in renewal.lost:
            lease = self._held.get(pending_post_id)
            if lease is not None and lease.token == tokens[pending_post_id]:
                # Claimed by another worker, or completed (by this one too, just before its
                # release): either way no call of it may be sent any more.
                del self._held[pending_post_id]
                log.info("the publishing lease of pending post %s is no longer held", pending_post_id)

    async def _beat(self) -> None:
        while self._held:
            await asyncio.sleep(self.renew_every_s)
            if self._held:
                await self.renew()

    async def close(self) -> None:
        for task in (self._heartbeat, self._renewal):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._heartbeat = self._renewal = None
