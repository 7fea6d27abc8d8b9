"""Angle statistics from running totals (migration 0009) agree with PostgreSQL's own aggregates
over the posts (count, avg, stddev_pop: what the statistics were before the totals) after any
sequence of what happens to posts: published, engagement recorded and recorded again, deleted,
restored, purged (one or many in a statement), moved to another angle, brand or organization;
a TRUNCATE empties them; and the migration fills the totals from the posts a database already
has."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hopcast_content.adapters.posts import Posts
from hopcast_content.adapters.purge import purge
from hopcast_content.bootstrap import render_migrations
from hopcast_content.domain.angles import AngleStats
from hopcast_shared.contract import Angle, EngagementUpdated
from hopcast_shared.contract.fields import MAX_ENGAGEMENT_RATE
from hopcast_shared.db import Conn, Database
from hopcast_shared.migrations import load_migrations

pytestmark = pytest.mark.integration

ANGLES = [Angle.EDUCATIONAL, Angle.USER_BENEFIT]
ORG, OTHER_ORG = uuid.uuid4(), uuid.uuid4()
BRANDS = [uuid.uuid4(), uuid.uuid4()]
POSTS = [uuid.uuid4() for _ in range(3)]
RATES = st.one_of(
    st.floats(0, 1, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.1, 1 / 3, 0.0354, 1e-300, 5e-324, MAX_ENGAGEMENT_RATE]),
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(0, 2), st.integers(0, 1), st.integers(0, 1)),
        st.tuples(st.just("engage"), st.integers(0, 2), st.integers(0, 1), st.integers(0, 1), RATES),
        st.tuples(st.just("delete"), st.integers(0, 2)),
        st.tuples(st.just("restore"), st.integers(0, 2)),
        st.tuples(st.just("purge"), st.integers(0, 2)),
        st.tuples(st.just("move"), st.integers(0, 2), st.integers(0, 1), st.integers(0, 1)),
        st.tuples(st.just("adopt"), st.integers(0, 2)),
        st.tuples(st.just("purge brand"), st.integers(0, 1)),
    ),
    min_size=1,
    max_size=30,
)

# What the statistics were before migration 0009: every counted post, aggregated.
REFERENCE = """
    SELECT brand_profile_id, angle, count(*) AS n, avg(engagement_rate) AS mean,
           coalesce(stddev_pop(engagement_rate), 0) AS sd
    FROM posts
    WHERE organization_id = $1 AND engagement_rate IS NOT NULL AND deleted_at IS NULL
    GROUP BY brand_profile_id, angle
"""


# The totals' rows against the posts, column by column, n = 0 rows included: none may differ.
RAW_MISMATCHES = """
    SELECT count(*) FROM (
        SELECT brand_profile_id, organization_id, angle, count(*) AS n, sum(engagement_rate::numeric) AS total,
               sum(engagement_rate::numeric * engagement_rate::numeric) AS squares
        FROM posts WHERE engagement_rate IS NOT NULL AND deleted_at IS NULL GROUP BY 1, 2, 3) p
    FULL JOIN angle_totals t USING (brand_profile_id, organization_id, angle)
    WHERE (coalesce(p.n, 0), coalesce(p.total, 0), coalesce(p.squares, 0)) <> (t.n, t.total, t.squares)
       OR t.n IS NULL
"""


async def reference(conn: Conn, org: uuid.UUID) -> dict[uuid.UUID, dict[Angle, AngleStats]]:
    stats: dict[uuid.UUID, dict[Angle, AngleStats]] = {brand: {} for brand in BRANDS}
    for r in await conn.fetch(REFERENCE, org):
        stats[r["brand_profile_id"]][Angle(r["angle"])] = AngleStats(r["n"], r["mean"], r["sd"])
    return stats


def assert_agree(got: dict[uuid.UUID, dict[Angle, AngleStats]], want: dict[uuid.UUID, dict[Angle, AngleStats]]) -> None:
    assert {b: set(s) for b, s in got.items()} == {b: set(s) for b, s in want.items()}
    for brand, by_angle in want.items():
        for angle, expected in by_angle.items():
            actual = got[brand][angle]
            assert actual.posts == expected.posts
            assert math.isclose(actual.mean_rate, expected.mean_rate, rel_tol=1e-12, abs_tol=1e-15)
            # stddev_pop's float arithmetic, against the totals' exact one: a few ulps of the
            # rates' scale apart where the spread is all but nil.
            scale = max(1.0, expected.mean_rate)
            assert math.isclose(actual.stddev, expected.stddev, rel_tol=1e-9, abs_tol=1e-9 * scale)


def engagement(post: uuid.UUID, brand: uuid.UUID, angle: Angle, rate: float) -> EngagementUpdated:
    return EngagementUpdated(
        post_id=post,
        brand_profile_id=brand,
        platform="MASTODON",
        angle=angle,
        likes=1,
        comments=0,
        shares=0,
        impressions=10,
        engagement_rate=rate,
    )


async def apply(conn: Conn, op: tuple[Any, ...]) -> None:
    """One thing that happens to a post, by the statements the service runs where it has one."""
    posts = Posts(conn)
    kind, post = op[0], POSTS[op[1] % len(POSTS)]
    if kind == "publish":  # a PostPublished's row: no rate yet (or, after its engagement, kept)
        await conn.execute(
            """INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle, published_at)
               VALUES ($1, $2, $3, 'MASTODON', $4, now())
               ON CONFLICT (post_id) DO UPDATE SET published_at = EXCLUDED.published_at, updated_at = now()""",
            post,
            ORG,
            BRANDS[op[2]],
            ANGLES[op[3]].value,
        )
    elif kind == "engage":
        # Refused ("post") once the post is another organization's: the statement changes nothing.
        refused = await posts.record_engagement(ORG, engagement(post, BRANDS[op[2]], ANGLES[op[3]], op[4]))
        assert refused in (None, "post")
    elif kind in ("delete", "restore"):
        await posts.set_deleted(post, ORG, kind == "delete")
    elif kind == "purge":
        await conn.execute("DELETE FROM posts WHERE post_id = $1", post)
    elif kind == "purge brand":  # many posts in one statement, as the purge of an organization
        await conn.execute("DELETE FROM posts WHERE brand_profile_id = $1", BRANDS[op[1]])
    elif kind == "adopt":  # no statement of the service moves a post to another organization
        await conn.execute("UPDATE posts SET organization_id = $2 WHERE post_id = $1", post, OTHER_ORG)
    else:
        await conn.execute(
            "UPDATE posts SET brand_profile_id = $2, angle = $3 WHERE post_id = $1", post, BRANDS[op[2]], ANGLES[op[3]]
        )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
# Each way a counted post's part moves, as a case of its own besides the generated ones.
@example(ops=[("engage", 0, 0, 0, 0.1), ("move", 0, 1, 0)])  # to another brand
@example(ops=[("engage", 0, 0, 0, 0.1), ("move", 0, 0, 1)])  # to another angle
@example(ops=[("engage", 0, 0, 0, 0.1), ("engage", 0, 0, 0, 0.3), ("engage", 1, 0, 0, 0.2)])  # rated again
@example(ops=[("engage", 0, 0, 0, 0.1), ("delete", 0), ("delete", 0), ("restore", 0), ("restore", 0)])
@example(ops=[("engage", 0, 0, 0, 0.1), ("purge", 0), ("engage", 1, 0, 0, 0.1), ("delete", 1), ("purge", 1)])
@example(ops=[("publish", 0, 0, 0), ("engage", 0, 1, 1, 0.2), ("publish", 0, 1, 0)])  # rated before published
@example(ops=[("engage", 0, 0, 0, 0.1), ("adopt", 0), ("engage", 1, 0, 0, MAX_ENGAGEMENT_RATE)])
@example(ops=[("engage", 0, 0, 0, 0.1), ("engage", 1, 0, 1, 0.2), ("engage", 2, 0, 1, 0.3), ("purge brand", 0)])
# A whole brand in one statement: counted posts of two angles, a deleted one and one not rated yet.
@example(
    ops=[("engage", 0, 0, 0, 0.1), ("engage", 1, 0, 1, 0.2), ("delete", 1), ("publish", 2, 0, 1), ("purge brand", 0)]
)
async def test_totals_agree_with_the_posts_aggregates_after_any_sequence(db: Database, ops: list[Any]) -> None:
    async with db.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            # Another organization's posts of the same brands and angles count only for it.
            await conn.execute(
                """INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle, engagement_rate)
                   VALUES ($1, $2, $3, 'MASTODON', 'EDUCATIONAL', 0.5)""",
                uuid.uuid4(),
                OTHER_ORG,
                BRANDS[0],
            )
            for op in ops:
                await apply(conn, op)
                for org in (ORG, OTHER_ORG):
                    got = await Posts(conn).angle_stats([(brand, org) for brand in BRANDS])
                    assert_agree(got, await reference(conn, org))
                assert await conn.fetchval(RAW_MISMATCHES) == 0
        finally:
            await tx.rollback()


async def test_the_migration_fills_the_totals_from_the_posts_already_there(database_url: str, tmp_path: Path) -> None:
    migrations = load_migrations("content", render_migrations(384, tmp_path))
    before = await Database.open(database_url, [m for m in migrations if m.version < 9])
    try:
        rates = [0.01, 0.02, 0.04, 0.5]
        for i, rate in enumerate(rates):
            await before.pool.execute(
                """INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle, engagement_rate,
                                      deleted_at)
                   VALUES ($1, $2, $3, 'MASTODON', $4, $5, CASE WHEN $6 THEN now() END)""",
                uuid.uuid4(),
                ORG,
                BRANDS[0],
                ANGLES[i % 2].value,
                rate,
                i == 3,  # deleted: not counted
            )
        # A post with no rate yet counts for nothing either.
        await before.pool.execute(
            """INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle)
               VALUES ($1, $2, $3, 'MASTODON', 'EDUCATIONAL')""",
            uuid.uuid4(),
            ORG,
            BRANDS[0],
        )
        want = await reference(before.pool, ORG)  # type: ignore[arg-type]
    finally:
        await before.close()
    after = await Database.open(database_url, migrations)
    try:
        got = await Posts(after.pool).angle_stats([(brand, ORG) for brand in BRANDS])  # type: ignore[arg-type]
        assert got[BRANDS[0]][Angle.EDUCATIONAL] == AngleStats(2, pytest.approx(0.025), pytest.approx(0.015))
        assert_agree(got, want)
    finally:
        await after.close()


async def test_purge_drops_the_totals_no_post_counts_in(h: Any) -> None:
    post = uuid.uuid4()
    await Posts(h.db.pool).record_engagement(ORG, engagement(post, BRANDS[0], Angle.EDUCATIONAL, 0.2))
    await Posts(h.db.pool).record_engagement(ORG, engagement(uuid.uuid4(), BRANDS[1], Angle.EDUCATIONAL, 0.3))
    assert await Posts(h.db.pool).set_deleted(post, ORG, True)
    await h.db.pool.execute("UPDATE posts SET deleted_at = now() - interval '40 days' WHERE post_id = $1", post)
    async with h.db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts["posts"] == 1 and counts["angle_totals"] == 1
    left = await h.db.pool.fetch("SELECT brand_profile_id, n FROM angle_totals")
    assert [(r["brand_profile_id"], r["n"]) for r in left] == [(BRANDS[1], 1)]


async def test_a_truncate_of_the_posts_empties_the_totals(h: Any) -> None:
    await Posts(h.db.pool).record_engagement(ORG, engagement(uuid.uuid4(), BRANDS[0], Angle.EDUCATIONAL, 0.2))
    assert await h.db.pool.fetchval("SELECT count(*) FROM angle_totals") == 1
    await h.db.pool.execute("TRUNCATE posts")
    assert await h.db.pool.fetchval("SELECT count(*) FROM angle_totals") == 0
