"""The publisher's handlers: each inbound event loads, decides and writes in the consumer's
transaction (with its inbox row and the events it emits). `DISPATCH` maps each event type
the publisher handles to its handler; the interface (and AsyncAPI document) is derived from it.

Pending posts: every input (PendingPostCreated, CreditsDebited, CreditsDebitRejected,
PendingPostApproved, PendingPostRejected, and content's PendingPostEditAccepted: an approval
with the reviewer's checked texts) locks the pending post, records the input and
asks the state machine (`domain.pending`) what follows; publishing itself starts in this
transaction (`service_layer/publishing.py`) and goes on in the publishing loop
(`entrypoints/publishing_loop.py`).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, cast

from opentelemetry import trace

from hopcast_publisher import metrics
from hopcast_publisher.domain.engagement import engagement_rate
from hopcast_publisher.domain.pending import (
    Approval,
    Debit,
    Decision,
    Input,
    PendingPost,
    Status,
    is_late_decision,
    step,
)
from hopcast_publisher.service_layer.account_tokens import received_token_state
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.publishing import now_utc, start_publishing
from hopcast_shared import projections
from hopcast_shared.contract import (
    Angle,
    BrandAccountLinked,
    BrandAccountUnlinked,
    CreditsDebited,
    CreditsDebitRejected,
    EngagementReported,
    EngagementUpdated,
    PendingPostApproved,
    PendingPostCreated,
    PendingPostEditAccepted,
    PendingPostRejected,
    Platform,
    PostDeleted,
    PostPublishFailed,
    PostRestored,
    PublishFailureReason,
    RunDeadlinePassed,
    RunOutcome,
    ScheduleRunCompleted,
    SocialAccountConnected,
    SocialAccountDeleted,
    SocialAccountRestored,
    SocialAccountUpdated,
)
from hopcast_shared.dispatch import Dispatch, batched
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.telemetry import inject_headers
from hopcast_shared.tenants import tenant_dispatch

log = logging.getLogger(__name__)


def state_of(row: Mapping[str, Any]) -> PendingPost:
    """The state machine's view of a pending_posts row."""
    return PendingPost(
        status=Status(row["status"]),
        has_post=row["has_post"],
        requires_approval=bool(row["requires_approval"]),
        debit=Debit(row["debit"]) if row["debit"] else None,
        approval=Approval(row["approval"]) if row["approval"] else None,
        deadline_passed=row.get("deadline_passed_at") is not None,
    )


# --- social accounts and links ---------------------------------------------------------------


async def account_upserted(
    deps: PublisherDeps, ctx: EventContext, data: SocialAccountConnected | SocialAccountUpdated
) -> None:
    """Tokens arrive bound to the organization and account; they are stored sealed to the
    account, unless older than the stored pair (`account_tokens`)."""
    org = ctx.envelope.organizationid
    account_id = data.social_account_id
    existing = await deps.accounts.account(ctx.conn, account_id, lock=True)
    if existing is not None and existing.organization_id != org:
        raise PermanentError(f"social account {account_id} belongs to another organization")
    if existing is not None and existing.platform != data.platform.value:
        raise PermanentError(
            f"social account {account_id} is a {existing.platform} account; its platform cannot change"
        )
    await deps.accounts.upsert_account(
        ctx.conn,
        {
            "id": account_id,
            "organization_id": org,
            "platform": data.platform.value,
            "handle": data.handle,
            "external_account_id": data.external_account_id,
            "api_base_url": data.api_base_url,
            "is_active": data.is_active,
            **received_token_state(deps.tokens, org, data, existing),
        },
    )


async def account_deleted(deps: PublisherDeps, ctx: EventContext, data: SocialAccountDeleted) -> None:
    if not await deps.accounts.set_account_deleted(ctx.conn, data.social_account_id, ctx.envelope.organizationid, True):
        await _refuse_unknown_account(ctx, data.social_account_id)


async def account_restored(deps: PublisherDeps, ctx: EventContext, data: SocialAccountRestored) -> None:
    if not await deps.accounts.set_account_deleted(
        ctx.conn, data.social_account_id, ctx.envelope.organizationid, False
    ):
        await _refuse_unknown_account(ctx, data.social_account_id)


async def account_linked(deps: PublisherDeps, ctx: EventContext, data: BrandAccountLinked) -> None:
    org = ctx.envelope.organizationid
    account = await deps.accounts.account(ctx.conn, data.social_account_id)
    if account is None or account.organization_id != org:
        await _refuse_unknown_account(ctx, data.social_account_id)
    await _refuse_if_another_organizations(ctx, "brands", data.brand_profile_id)
    await deps.accounts.link_account(
        ctx.conn,
        brand_id=data.brand_profile_id,
        account_id=data.social_account_id,
        org_id=org,
        platform=account.platform,
        is_default=data.is_default,
    )


async def account_unlinked(deps: PublisherDeps, ctx: EventContext, data: BrandAccountUnlinked) -> None:
    org = ctx.envelope.organizationid
    if not await deps.accounts.unlink_account(ctx.conn, data.brand_profile_id, data.social_account_id, org):
        await _refuse_if_another_organizations(ctx, "brands", data.brand_profile_id)
        await _refuse_if_another_organizations(ctx, "social_accounts", data.social_account_id)


# --- pending posts ---------------------------------------------------------------------------


async def pending_post_inputs(deps: PublisherDeps, items: Sequence[tuple[EventContext, PendingPostInput]]) -> None:
    """The inputs of pending posts (drafts, debits, approvals, rejections, in any order and
    mix), a consumer batch of them at once: lock every pending post named (one statement,
    in id order), apply each input in order to its post's state machine, write the posts
    that changed (one statement), start publishing those now complete (accounts and
    attempts: one statement each). The same as one input at a time, in fewer statements."""
    conn = items[0][0].conn
    locked = await deps.pending_posts.lock_pending_posts(
        conn, [(_pending_post_id(data), ctx.envelope.organizationid) for ctx, data in items]
    )
    states = {pending_post_id: dict(row) for pending_post_id, row in locked.items()}
    # Drafts of runs already past their deadline (RunDeadlinePassed read first) arrive marked.
    past = await deps.pending_posts.runs_past_deadline(
        conn, [(ctx.envelope.organizationid, d.run_id) for ctx, d in items if isinstance(d, PendingPostCreated)]
    )
    changed: dict[uuid.UUID, dict[str, Any]] = {}
    starting: list[uuid.UUID] = []
    for ctx, data in items:
        pending_post_id = _pending_post_id(data)
        state = states[pending_post_id]
        if state["organization_id"] != ctx.envelope.organizationid:
            raise PermanentError(f"pending post {pending_post_id} belongs to another organization")
        if isinstance(data, PendingPostCreated) and (ctx.envelope.organizationid, data.run_id) in past:
            state["deadline_passed_at"] = state.get("deadline_passed_at") or now_utc()
        _check_own_deadline(state, data)
        decision, changes = _receive(state, ctx, data)
        if changes:
            changed[pending_post_id] = state
        if decision is Decision.PUBLISH:
            starting.append(pending_post_id)
        else:
            await _end_waiting(ctx, state, decision)
    saved = await deps.pending_posts.save_pending_posts(conn, list(changed.values()))
    statuses = await start_publishing(deps, conn, items[0][0].kafka, [saved[i] for i in starting])
    if statuses:
        # One line per batch (a line per post would cost more than its handling).
        counts = Counter(status.value for status in statuses.values())
        log.info("pending posts with all their inputs: %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        for pending_post_id, status in statuses.items():
            log.debug("pending post %s: all inputs here; %s", pending_post_id, status.value)


def _check_own_deadline(state: dict[str, Any], data: PendingPostInput) -> None:
    """A post without a reviewer whose run's deadline (as its draft said) has passed is past it,
    whether or not RunDeadlinePassed came yet: topics are not ordered between them, and a
    publisher back from an outage must not start what the deadline already stopped. (A
    reviewer's wait moves the deadline, which only the scheduler knows: RunDeadlinePassed.)"""
    deadline = data.deadline if isinstance(data, PendingPostCreated) else state.get("run_deadline")
    requires_approval = data.requires_approval if isinstance(data, PendingPostCreated) else state["requires_approval"]
    if state["status"] != Status.WAITING.value or deadline is None or requires_approval:
        return
    now = now_utc()
    if deadline <= now and state.get("deadline_passed_at") is None:
        state["deadline_passed_at"] = now


async def run_deadline_passed(deps: PublisherDeps, ctx: EventContext, data: RunDeadlinePassed) -> None:
    """The run is past its deadline. Its pending post, WAITING, ends TIMED_OUT once it has its
    debit (now, or when the debit comes); PUBLISHING, no platform call starts after this (the
    publishing loop fails the platforms not called TIMED_OUT; a call already sent is finished
    and reported). A run whose pending post has not come yet is remembered for it."""
    org = ctx.envelope.organizationid
    state = await deps.pending_posts.record_run_deadline(ctx.conn, org, data.run_id)
    if state is None:
        if await deps.pending_posts.run_of_another(ctx.conn, data.run_id, org):
            raise PermanentError(f"run {data.run_id} belongs to another organization")
        return
    decision, changes = _receive(state, ctx, data)
    if changes:
        await deps.pending_posts.save_pending_posts(ctx.conn, [state])
    await _end_waiting(ctx, state, decision)


async def _end_waiting(ctx: EventContext, state: dict[str, Any], decision: Decision) -> None:
    """The events of a WAITING pending post's end: REJECTED (the run's outcome), TIMED_OUT (each
    platform failed TIMED_OUT, so billing refunds them, and the run's outcome); nothing else."""
    outcome = {Decision.END_REJECTED: RunOutcome.REJECTED, Decision.END_TIMED_OUT: RunOutcome.TIMED_OUT}.get(decision)
    if outcome is None:
        return
    run_id = str(state["run_id"])
    if outcome is RunOutcome.TIMED_OUT:
        for platform in state["platforms"] or []:
            await ctx.emit(
                PostPublishFailed(
                    pending_post_id=state["id"],
                    run_id=state["run_id"],
                    platform=Platform(platform),
                    reason=PublishFailureReason.TIMED_OUT,
                    detail="the run's deadline passed before publishing started: not sent",
                ),
                correlation_id=run_id,
            )
    await ctx.emit(
        ScheduleRunCompleted(
            run_id=state["run_id"],
            schedule_id=state["schedule_id"],
            brand_profile_id=state["brand_profile_id"],
            outcome=outcome,
            due_at=state["due_at"],
            completed_at=now_utc(),
        ),
        correlation_id=run_id,
    )
    metrics.RUNS_COMPLETED.labels(outcome.value).inc()


# --- engagement ------------------------------------------------------------------------------


async def engagement_reported(deps: PublisherDeps, ctx: EventContext, data: EngagementReported) -> None:
    post = await deps.posts.post(ctx.conn, data.post_id, lock=True)
    if post is None:
        raise PermanentError(f"unknown post {data.post_id} for this organization")
    if post.organization_id != ctx.envelope.organizationid:
        raise PermanentError(f"post {data.post_id} belongs to another organization")
    seen = post.engagement_observed_at
    if seen is not None and data.observed_at < seen:
        log.info("engagement of post %s observed at %s is older than what we have", data.post_id, data.observed_at)
        return
    rate = engagement_rate(data.likes, data.comments, data.shares, data.impressions)
    await deps.posts.record_engagement(
        ctx.conn,
        data.post_id,
        likes=data.likes,
        comments=data.comments,
        shares=data.shares,
        impressions=data.impressions,
        rate=rate,
        observed_at=data.observed_at,
    )
    metrics.ENGAGEMENT_UPDATES.inc()
    if post.deleted_at is not None:
        return  # kept up to date, but a deleted post is out of the dashboards
    await ctx.emit(
        EngagementUpdated(
            post_id=data.post_id,
            brand_profile_id=post.brand_profile_id,
            platform=cast(Platform, post.platform),  # a str, validated by the model
            angle=cast(Angle, post.angle),
            likes=data.likes,
            comments=data.comments,
            shares=data.shares,
            impressions=data.impressions,
            engagement_rate=rate,
        ),
        correlation_id=str(post.run_id),
    )


# --- deleted posts ----------------------------------------------------------------------------


async def post_deleted_or_restored(deps: PublisherDeps, ctx: EventContext, data: PostDeleted | PostRestored) -> None:
    """PostDeleted hides the organization's post from the analytics reads and its engagement
    updates (kept, not emitted); PostRestored shows it again. Another organization's post id
    is refused; an unknown one too (a post is known here from the moment it is published)."""
    org = ctx.envelope.organizationid
    if await deps.posts.set_post_deleted(ctx.conn, data.post_id, org, isinstance(data, PostDeleted)):
        return
    if await deps.posts.of_another_organization(ctx.conn, data.post_id, org):
        raise PermanentError(f"post {data.post_id} belongs to another organization")
    raise PermanentError(f"unknown post {data.post_id} for this organization")


# --- ids of another organization ----------------------------------------------------------------
# An event naming an id another organization has is refused (a dead letter saying so): never
# applied to that organization's rows, and never ignored as if the id were unknown.

_KIND = {"brands": "brand", "social_accounts": "social account"}


async def _refuse_if_another_organizations(ctx: EventContext, table: projections.Owned, named: uuid.UUID) -> None:
    if await projections.owned_by_another(ctx.conn, table, named, ctx.envelope.organizationid):
        raise PermanentError(f"{_KIND[table]} {named} belongs to another organization")


async def _refuse_unknown_account(ctx: EventContext, account_id: uuid.UUID) -> NoReturn:
    await _refuse_if_another_organizations(ctx, "social_accounts", account_id)
    raise PermanentError(f"unknown social account {account_id} for this organization")


PendingPostInput = (
    PendingPostCreated
    | CreditsDebited
    | CreditsDebitRejected
    | PendingPostApproved
    | PendingPostRejected
    | PendingPostEditAccepted
)
PendingPostChange = PendingPostInput | RunDeadlinePassed
_INPUT_OF: dict[type[Any], Input] = {
    PendingPostCreated: Input.POST,
    CreditsDebited: Input.DEBITED,
    CreditsDebitRejected: Input.DEBIT_REJECTED,
    PendingPostApproved: Input.APPROVED,
    PendingPostRejected: Input.REJECTED,
    PendingPostEditAccepted: Input.APPROVED,  # the reviewer's edit, checked by content
    RunDeadlinePassed: Input.DEADLINE_PASSED,
}


def _pending_post_id(data: PendingPostInput) -> uuid.UUID:
    return data.pending_post_id


def _receive(state: dict[str, Any], ctx: EventContext, data: PendingPostChange) -> tuple[Decision, bool]:
    """Apply one input to a pending post's state (the row as a dict, updated in place): what
    follows (the state machine of domain.pending decides), and whether the state changed."""
    item = _INPUT_OF[type(data)]
    post = data if isinstance(data, PendingPostCreated) else None
    before = state_of(state)
    if not isinstance(data, RunDeadlinePassed) and _not_a_decision_here(before, item, data):
        return Decision.NOTHING, False
    after, decision = step(before, item, requires_approval=post.requires_approval if post else False)
    if post is not None and not before.has_post:
        state.update(_post_columns(post))
    if after.debit is not before.debit and after.debit is not None:
        state["debit"] = after.debit.value
    if after.approval is not before.approval and after.approval is not None:
        state["approval"] = after.approval.value
        if isinstance(data, PendingPostEditAccepted):
            state["texts"] = _edited_texts(state, data)
    if after.deadline_passed and not before.deadline_passed:
        state["deadline_passed_at"] = state.get("deadline_passed_at") or now_utc()
    if decision in (Decision.END_REJECTED, Decision.END_SILENTLY, Decision.END_TIMED_OUT):
        state.update(status=after.status.value, completed_at=now_utc(), cause_event_id=ctx.envelope.id)
    if decision is Decision.PUBLISH:
        state.update(
            status=Status.PUBLISHING.value,
            publishing_at=now_utc(),
            cause_event_id=ctx.envelope.id,
            trace_headers=_trace_of(ctx),
        )
    if decision is Decision.END_SILENTLY:
        log.info("pending post %s: debit rejected; billing ended the run", state["id"])
    elif decision is Decision.NOTHING and after == before:
        log.info("pending post %s is %s; %s changes nothing", state["id"], before.status.value, item.value)
    # A late input (after publishing started) decides nothing but is recorded all the same.
    return decision, after != before


def _not_a_decision_here(before: PendingPost, item: Input, data: PendingPostInput) -> bool:
    """An approval with texts waits for content's check of the edit (its PendingPostEditAccepted
    is the approval, counted if late); a decision on an expired draft changes nothing and is
    counted."""
    if isinstance(data, PendingPostApproved) and data.texts:
        log.info("pending post %s: an edited approval waits for content's check", data.pending_post_id)
        return True
    if is_late_decision(before, item):
        kind = "edited" if isinstance(data, PendingPostEditAccepted) else item.value.lower()
        metrics.LATE_DECISIONS.labels(kind).inc()
        log.info("pending post %s expired; a late %s decision changes nothing", data.pending_post_id, kind)
        return True
    return False


def _edited_texts(state: Mapping[str, Any], edit: PendingPostEditAccepted) -> dict[str, str]:
    """The drafted texts with the reviewer's in place of those it edited (of the post's platforms)."""
    texts = dict(state.get("texts") or {})
    platforms = set(state.get("platforms") or ())
    texts.update({p.value: text for p, text in edit.texts.items() if p.value in platforms})
    return texts


def _trace_of(ctx: EventContext) -> list[tuple[str, str]]:
    """The trace context of the event being handled (its own span, in a batch), stored with
    the pending post for the events its publishing emits."""
    if ctx.span is None:
        return inject_headers()
    with trace.use_span(ctx.span):
        return inject_headers()


def _post_columns(post: PendingPostCreated) -> dict[str, Any]:
    return {
        "has_post": True,
        "run_id": post.run_id,
        "schedule_id": post.schedule_id,
        "brand_profile_id": post.brand_profile_id,
        "material_id": post.material_id,
        "due_at": post.due_at,
        "content": post.content,
        "hashtags": list(post.hashtags),
        "media_urls": [m.url for m in post.media],
        "media": [m.model_dump(mode="json") for m in post.media],
        "texts": {p.value: text for p, text in post.texts.items()},
        "platforms": [p.value for p in post.platforms],
        "angle": post.angle.value,
        "angle_reason": post.angle_reason,
        "requires_approval": post.requires_approval,
        "approval_deadline": post.approval_deadline if post.requires_approval else None,
        "run_deadline": post.deadline,
    }


_inputs = batched(pending_post_inputs)

DISPATCH: Dispatch = {
    **tenant_dispatch(),
    "SocialAccountConnected": account_upserted,
    "SocialAccountUpdated": account_upserted,
    "SocialAccountDeleted": account_deleted,
    "SocialAccountRestored": account_restored,
    "BrandAccountLinked": account_linked,
    "BrandAccountUnlinked": account_unlinked,
    # One handler for every input of a pending post, so a consumer batch that mixes them is
    # handled in one call.
    "PendingPostCreated": _inputs,
    "CreditsDebited": _inputs,
    "CreditsDebitRejected": _inputs,
    "PendingPostApproved": _inputs,
    "PendingPostRejected": _inputs,
    "PendingPostEditAccepted": _inputs,
    "RunDeadlinePassed": run_deadline_passed,
    "EngagementReported": engagement_reported,
    "PostDeleted": post_deleted_or_restored,
    "PostRestored": post_deleted_or_restored,
}
