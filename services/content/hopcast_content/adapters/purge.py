"""Content's retention: what was soft-deleted long ago is deleted for good, and drafts, runs
and embeddings once past both the retention and the duplicate window."""

from __future__ import annotations

from hopcast_shared.db import Conn


async def purge(conn: Conn, older_than_days: int, *, window_days: int = 30) -> dict[str, int]:
    """Delete for good what was soft-deleted more than `older_than_days` ago (organizations
    with all their data, brands with their materials, materials, posts), runs and ended drafts
    past both the retention and the duplicate window, and their embeddings; and the angle
    totals no post counts in any more."""
    keep_days = max(older_than_days, window_days)
    counts: dict[str, int] = {}

    async def run(name: str, sql: str, days: int) -> None:
        status = await conn.execute(sql, days)
        counts[name] = counts.get(name, 0) + int(status.split()[-1])

    cutoff = "now() - make_interval(days => $1)"
    for table in ("content_embeddings", "pending_posts", "materials", "posts", "runs", "schedules", "brands"):
        await run(
            table,
            f"DELETE FROM {table} WHERE organization_id IN (SELECT id FROM organizations WHERE deleted_at < {cutoff})",
            older_than_days,
        )
    await run("organizations", f"DELETE FROM organizations WHERE deleted_at < {cutoff}", older_than_days)
    # Materials deleted themselves, then those of deleted brands, each with its embedding: one
    # statement with `... OR brand_profile_id IN (SELECT ...)` is a subplan searched per
    # material once the deleted brands outgrow work_mem (see the scheduler's PURGE_RUN_STAGES).
    of_deleted_brand = (
        f"SELECT m.id FROM materials m JOIN brands b ON b.id = m.brand_profile_id WHERE b.deleted_at < {cutoff}"
    )
    await run(
        "content_embeddings",
        f"""DELETE FROM content_embeddings WHERE kind = 'MATERIAL' AND source_id IN (
                SELECT id FROM materials WHERE deleted_at < {cutoff})""",
        older_than_days,
    )
    await run("materials", f"DELETE FROM materials WHERE deleted_at < {cutoff}", older_than_days)
    await run(
        "content_embeddings",
        f"DELETE FROM content_embeddings WHERE kind = 'MATERIAL' AND source_id IN ({of_deleted_brand})",
        older_than_days,
    )
    await run("materials", f"DELETE FROM materials WHERE id IN ({of_deleted_brand})", older_than_days)
    await run("brands", f"DELETE FROM brands WHERE deleted_at < {cutoff}", older_than_days)
    await run("schedules", f"DELETE FROM schedules WHERE deleted_at < {cutoff}", older_than_days)
    await run("posts", f"DELETE FROM posts WHERE deleted_at < {cutoff}", older_than_days)
    await run(
        "content_embeddings",
        f"DELETE FROM content_embeddings WHERE kind <> 'MATERIAL' AND created_at < {cutoff}",
        keep_days,
    )
    await run("pending_posts", f"DELETE FROM pending_posts WHERE ended_at < {cutoff}", keep_days)
    await run("runs", f"DELETE FROM runs WHERE handled_at < {cutoff}", keep_days)
    # The triggers on posts took the deleted posts out of their angles' totals (migration 0009);
    # an angle with no post left has nothing to keep.
    counts["angle_totals"] = int((await conn.execute("DELETE FROM angle_totals WHERE n = 0")).split()[-1])
    return counts
