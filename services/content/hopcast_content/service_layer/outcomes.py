"""What happened to the drafts: published on a platform, the run's end, the posts'
engagement (which steers the next runs' weighted selection and angles), and posts deleted
or restored upstream (a deleted post steers nothing until restored)."""

from __future__ import annotations

import logging

from hopcast_content.domain.materials import PUBLISHED_OUTCOMES
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.tenancy import (
    named_id,
    refuse_another_organizations,
    refuse_if_another_organizations,
)
from hopcast_shared.contract import (
    EngagementUpdated,
    PostDeleted,
    PostPublished,
    PostRestored,
    RunOutcome,
    ScheduleRunCompleted,
)
from hopcast_shared.handling import EventContext, PermanentError

log = logging.getLogger(__name__)


async def post_published(deps: ContentDeps, ctx: EventContext, data: PostPublished) -> None:
    """Published on one platform: the post is recorded (and its draft's embedding kept as
    the POST's); the material's use is counted once per pending post, whatever the
    platforms (a READY material at max_uses becomes USED). One statement."""
    published = await deps.posts(ctx.conn).publish(ctx.envelope.organizationid, data)
    if published.of_another is not None:
        refuse_another_organizations(published.of_another, named_id(data, published.of_another))
    if not published.known:
        log.info("PostPublished for a pending post content does not know (%s)", data.pending_post_id)


async def run_completed(deps: ContentDeps, ctx: EventContext, data: ScheduleRunCompleted) -> None:
    """A run ended: its draft is no longer in flight, so its material may be picked again.
    If it published, its use counts (in case PostPublished is still on its way); if not,
    the draft no longer counts as a recent post for the duplicate check. One statement."""
    # Never published (rejected, no credits, failed): it is no post to keep away from.
    published = RunOutcome(data.outcome) in PUBLISHED_OUTCOMES
    runs = deps.runs(ctx.conn)
    org = ctx.envelope.organizationid
    if not await runs.end(data.run_id, org, str(data.outcome), data.completed_at, published=published):
        await refuse_if_another_organizations(runs, ctx, "run", data.run_id)


async def engagement_updated(deps: ContentDeps, ctx: EventContext, data: EngagementUpdated) -> None:
    of_another = await deps.posts(ctx.conn).record_engagement(ctx.envelope.organizationid, data)
    if of_another is not None:
        refuse_another_organizations(of_another, named_id(data, of_another))


async def post_deleted_or_restored(deps: ContentDeps, ctx: EventContext, data: PostDeleted | PostRestored) -> None:
    """PostDeleted takes the organization's post out of weighted selection and angle learning
    (its engagement is still recorded); PostRestored counts it again. Another organization's
    post is refused; so is one content has not seen published yet (a dead letter, replayable
    once its PostPublished is in)."""
    posts = deps.posts(ctx.conn)
    if await posts.set_deleted(data.post_id, ctx.envelope.organizationid, isinstance(data, PostDeleted)):
        return
    await refuse_if_another_organizations(posts, ctx, "post", data.post_id)
    raise PermanentError(f"unknown post {data.post_id} for this organization")
