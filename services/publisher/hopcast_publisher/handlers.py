"""The publisher's service layer: each inbound event loads, decides and writes in the
consumer's transaction (with its inbox row and the events it emits).

Pending posts: every input (PendingPostCreated, CreditsDebited, CreditsDebitRejected,
PendingPostApproved, PendingPostRejected) locks the pending post, records the input and
asks the state machine (`domain.pending`) what follows; publishing itself starts in this
transaction and goes on in the publishing loop (see `publishing.py`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from hopcast_publisher import metrics
from hopcast_publisher.adapters import repository as repo
from hopcast_publisher.adapters.tokens import AccountTokens, TokenDecryptError
from hopcast_publisher.domain.engagement import engagement_rate
from hopcast_publisher.domain.pending import Approval, Debit, Decision, Input, PendingPost, Status, step
from hopcast_publisher.publishing import now_utc, start_publishing
from hopcast_shared import projections
from hopcast_shared.consumer import EventContext, Handler, PermanentError
from hopcast_shared.contract import (
    BrandAccountLinked,
    BrandAccountUnlinked,
    BrandProfileCreated,
    BrandProfileDeleted,
    BrandProfileRestored,
    BrandProfileUpdated,
    CreditsDebited,
    CreditsDebitRejected,
    EngagementReported,
    EngagementUpdated,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationRestored,
    PendingPostApproved,
    PendingPostCreated,
    PendingPostRejected,
    RunOutcome,
    ScheduleRunCompleted,
    SocialAccountConnected,
    SocialAccountDeleted,
    SocialAccountRestored,
    SocialAccountUpdated,
)

log = logging.getLogger(__name__)


def state_of(row: asyncpg.Record) -> PendingPost:
    """The state machine's view of a pending_posts row."""
    return PendingPost(
        status=Status(row["status"]),
        has_post=row["has_post"],
        requires_approval=bool(row["requires_approval"]),
        debit=Debit(row["debit"]) if row["debit"] else None,
        approval=Approval(row["approval"]) if row["approval"] else None,
    )


class PublisherHandlers:
    """The handlers, with what they need: the token sealing of the service's keyring."""

    def __init__(self, tokens: AccountTokens) -> None:
        self.tokens = tokens

    def handlers(self) -> dict[str, Handler]:
        return {
            "OrganizationCreated": self.organization_created,
            "OrganizationDeleted": self.organization_deleted,
            "OrganizationRestored": self.organization_restored,
            "BrandProfileCreated": self.brand_upserted,
            "BrandProfileUpdated": self.brand_upserted,
            "BrandProfileDeleted": self.brand_deleted,
            "BrandProfileRestored": self.brand_restored,
            "SocialAccountConnected": self.account_upserted,
            "SocialAccountUpdated": self.account_upserted,
            "SocialAccountDeleted": self.account_deleted,
            "SocialAccountRestored": self.account_restored,
            "BrandAccountLinked": self.account_linked,
            "BrandAccountUnlinked": self.account_unlinked,
            "PendingPostCreated": self.pending_post_created,
            "CreditsDebited": self.credits_debited,
            "CreditsDebitRejected": self.credits_debit_rejected,
            "PendingPostApproved": self.pending_post_approved,
            "PendingPostRejected": self.pending_post_rejected,
            "EngagementReported": self.engagement_reported,
        }

    # --- organizations and brands --------------------------------------------------------------

    async def organization_created(self, ctx: EventContext, data: OrganizationCreated) -> None:
        await projections.upsert_organization(ctx.conn, data.organization_id, data.name)

    async def organization_deleted(self, ctx: EventContext, data: OrganizationDeleted) -> None:
        await projections.set_organization_deleted(ctx.conn, data.organization_id, True)

    async def organization_restored(self, ctx: EventContext, data: OrganizationRestored) -> None:
        await projections.set_organization_deleted(ctx.conn, data.organization_id, False)

    async def brand_upserted(self, ctx: EventContext, data: BrandProfileCreated | BrandProfileUpdated) -> None:
        owner = await repo.brand_owner(ctx.conn, data.brand_profile_id)
        if owner is not None and owner != ctx.envelope.organizationid:
            raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
        await repo.upsert_brand(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, data.name)

    async def brand_deleted(self, ctx: EventContext, data: BrandProfileDeleted) -> None:
        await projections.set_brand_deleted(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, True)

    async def brand_restored(self, ctx: EventContext, data: BrandProfileRestored) -> None:
        await projections.set_brand_deleted(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, False)

    # --- social accounts and links ---------------------------------------------------------------

    async def account_upserted(self, ctx: EventContext, data: SocialAccountConnected | SocialAccountUpdated) -> None:
        """Tokens arrive under the transport associated data; they are stored sealed to the account."""
        org = ctx.envelope.organizationid
        account_id = data.social_account_id
        existing = await repo.account(ctx.conn, account_id, lock=True)
        if existing is not None and existing["organization_id"] != org:
            raise PermanentError(f"social account {account_id} belongs to another organization")
        if existing is not None and existing["platform"] != data.platform.value:
            raise PermanentError(
                f"social account {account_id} is a {existing['platform']} account; its platform cannot change"
            )
        try:
            access = self.tokens.reseal_from_transport(account_id, data.access_token)
            refresh = self.tokens.reseal_from_transport(account_id, data.refresh_token) if data.refresh_token else None
        except TokenDecryptError:
            raise PermanentError(
                "access_token or refresh_token does not decrypt: tampered with, or made under a key this service lacks"
            ) from None
        await repo.upsert_account(
            ctx.conn,
            {
                "id": account_id,
                "organization_id": org,
                "platform": data.platform.value,
                "handle": data.handle,
                "external_account_id": data.external_account_id,
                "api_base_url": data.api_base_url,
                "access_token": access,
                "refresh_token": refresh,
                "token_expires_at": data.token_expires_at,
                "is_active": data.is_active,
            },
        )

    async def account_deleted(self, ctx: EventContext, data: SocialAccountDeleted) -> None:
        if not await repo.set_account_deleted(ctx.conn, data.social_account_id, ctx.envelope.organizationid, True):
            raise PermanentError(f"unknown social account {data.social_account_id} for this organization")

    async def account_restored(self, ctx: EventContext, data: SocialAccountRestored) -> None:
        if not await repo.set_account_deleted(ctx.conn, data.social_account_id, ctx.envelope.organizationid, False):
            raise PermanentError(f"unknown social account {data.social_account_id} for this organization")

    async def account_linked(self, ctx: EventContext, data: BrandAccountLinked) -> None:
        org = ctx.envelope.organizationid
        account = await repo.account(ctx.conn, data.social_account_id)
        if account is None or account["organization_id"] != org:
            raise PermanentError(f"unknown social account {data.social_account_id} for this organization")
        owner = await repo.brand_owner(ctx.conn, data.brand_profile_id)
        if owner is not None and owner != org:
            raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
        await repo.link_account(
            ctx.conn,
            brand_id=data.brand_profile_id,
            account_id=data.social_account_id,
            org_id=org,
            platform=account["platform"],
            is_default=data.is_default,
        )

    async def account_unlinked(self, ctx: EventContext, data: BrandAccountUnlinked) -> None:
        await repo.unlink_account(ctx.conn, data.brand_profile_id, data.social_account_id, ctx.envelope.organizationid)

    # --- pending posts ---------------------------------------------------------------------------

    async def pending_post_created(self, ctx: EventContext, data: PendingPostCreated) -> None:
        await self._advance(ctx, data.pending_post_id, Input.POST, data)

    async def credits_debited(self, ctx: EventContext, data: CreditsDebited) -> None:
        await self._advance(ctx, data.pending_post_id, Input.DEBITED)

    async def credits_debit_rejected(self, ctx: EventContext, data: CreditsDebitRejected) -> None:
        await self._advance(ctx, data.pending_post_id, Input.DEBIT_REJECTED)

    async def pending_post_approved(self, ctx: EventContext, data: PendingPostApproved) -> None:
        await self._advance(ctx, data.pending_post_id, Input.APPROVED)

    async def pending_post_rejected(self, ctx: EventContext, data: PendingPostRejected) -> None:
        await self._advance(ctx, data.pending_post_id, Input.REJECTED)

    async def _advance(
        self, ctx: EventContext, pending_post_id: uuid.UUID, item: Input, post: PendingPostCreated | None = None
    ) -> None:
        org = ctx.envelope.organizationid
        row = await repo.lock_pending_post(ctx.conn, pending_post_id, org)
        if row["organization_id"] != org:
            raise PermanentError(f"pending post {pending_post_id} belongs to another organization")
        before = state_of(row)
        after, decision = step(before, item, requires_approval=post.requires_approval if post else False)
        values: dict[str, Any] = {}
        if post is not None and not before.has_post:
            values.update(_post_columns(post))
        if after.debit is not before.debit and after.debit is not None:
            values["debit"] = after.debit.value
        if after.approval is not before.approval and after.approval is not None:
            values["approval"] = after.approval.value
        if decision in (Decision.END_REJECTED, Decision.END_SILENTLY):
            values.update(status=after.status.value, completed_at=now_utc(), cause_event_id=ctx.envelope.id)
        if decision is Decision.PUBLISH:
            # The input's columns are saved with the new status, in one statement.
            status = await start_publishing(
                ctx.conn, ctx.kafka, {**dict(row), **values}, cause_event_id=ctx.envelope.id, recorded=values
            )
            log.info("pending post %s: all inputs here; %s", pending_post_id, status.value)
            return
        if values:
            row = await repo.save_pending_post(ctx.conn, pending_post_id, values)
        if decision is Decision.END_REJECTED:
            await ctx.emit(
                ScheduleRunCompleted(
                    run_id=row["run_id"],
                    schedule_id=row["schedule_id"],
                    brand_profile_id=row["brand_profile_id"],
                    outcome=RunOutcome.REJECTED,
                    due_at=row["due_at"],
                    completed_at=now_utc(),
                ),
                correlation_id=str(row["run_id"]),
            )
            metrics.RUNS_COMPLETED.labels(RunOutcome.REJECTED.value).inc()
        elif decision is Decision.END_SILENTLY:
            log.info("pending post %s: debit rejected; billing ended the run", pending_post_id)
        elif decision is Decision.NOTHING and after == before:
            log.info("pending post %s is %s; %s changes nothing", pending_post_id, before.status.value, item.value)

    # --- engagement ------------------------------------------------------------------------------

    async def engagement_reported(self, ctx: EventContext, data: EngagementReported) -> None:
        post = await repo.post(ctx.conn, data.post_id, lock=True)
        if post is None or post["organization_id"] != ctx.envelope.organizationid:
            raise PermanentError(f"unknown post {data.post_id} for this organization")
        seen = post["engagement_observed_at"]
        if seen is not None and data.observed_at < seen:
            log.info("engagement of post %s observed at %s is older than what we have", data.post_id, data.observed_at)
            return
        rate = engagement_rate(data.likes, data.comments, data.shares, data.impressions)
        await repo.record_engagement(
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
        if post["deleted_at"] is not None:
            return  # kept up to date, but a deleted post is out of the dashboards
        await ctx.emit(
            EngagementUpdated(
                post_id=data.post_id,
                brand_profile_id=post["brand_profile_id"],
                platform=post["platform"],
                angle=post["angle"],
                likes=data.likes,
                comments=data.comments,
                shares=data.shares,
                impressions=data.impressions,
                engagement_rate=rate,
            ),
            correlation_id=str(post["run_id"]),
        )


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
        "media_urls": list(post.media_urls),
        "platforms": [p.value for p in post.platforms],
        "angle": post.angle.value,
        "requires_approval": post.requires_approval,
    }
