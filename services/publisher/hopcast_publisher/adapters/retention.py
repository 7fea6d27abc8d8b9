"""Purging for good what was soft-deleted (or finished) longer ago than the retention: the
publisher's part of `hopcast purge` (entry point `hopcast.purge`) and of its periodic job."""

from __future__ import annotations

from hopcast_shared import projections
from hopcast_shared.db import Conn


async def purge(conn: Conn, older_than_days: int) -> dict[str, int]:
    """Delete for good what was soft-deleted (or finished) more than `older_than_days` ago:
    organizations with everything of theirs (accounts and their tokens, links, pending posts,
    posts, brands); brands with their links, pending posts and posts; posts; accounts; and
    pending posts that ended that long ago.

    The organizations and brands are locked first (projections.lock_purgeable)."""
    cutoff = "now() - make_interval(days => $1)"
    orgs, brands = await projections.lock_purgeable(conn, older_than_days)
    counts: dict[str, int] = {}

    async def delete(name: str, sql: str, *args: object) -> None:
        status = await conn.execute(sql, *args)
        counts[name] = int(status.split()[-1])

    of_gone = "organization_id = ANY($2::uuid[]) OR brand_profile_id = ANY($3::uuid[])"
    await delete("posts", f"DELETE FROM posts WHERE deleted_at < {cutoff} OR {of_gone}", older_than_days, orgs, brands)
    # Attempts go with their pending post (ON DELETE CASCADE).
    await delete(
        "pending_posts",
        f"DELETE FROM pending_posts WHERE completed_at < {cutoff} OR {of_gone}",
        older_than_days,
        orgs,
        brands,
    )
    await delete(
        "brand_accounts",
        "DELETE FROM brand_accounts WHERE organization_id = ANY($1::uuid[]) OR brand_profile_id = ANY($2::uuid[])",
        orgs,
        brands,
    )
    # Their remaining links go with the accounts (ON DELETE CASCADE).
    await delete(
        "social_accounts",
        f"DELETE FROM social_accounts WHERE deleted_at < {cutoff} OR organization_id = ANY($2::uuid[])",
        older_than_days,
        orgs,
    )
    # Uploads a platform may have dropped (migration 0008), and those of purged organizations.
    await delete(
        "media_uploads",
        "DELETE FROM media_uploads WHERE expires_at < now() OR organization_id = ANY($1::uuid[])",
        orgs,
    )
    await delete(
        "run_deadlines",
        f"DELETE FROM run_deadlines WHERE passed_at < {cutoff} OR organization_id = ANY($2::uuid[])",
        older_than_days,
        orgs,
    )
    await delete("brands", "DELETE FROM brands WHERE id = ANY($1::uuid[])", brands)
    await delete("organizations", "DELETE FROM organizations WHERE id = ANY($1::uuid[])", orgs)
    return counts
