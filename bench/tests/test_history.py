"""The history world of bench/history.py: texts distinct and reproducible, and a template the
services built, with the history beside it, that holds what a service would have made (each
balance still the sum of its ledger, the history's drafts visible to content's duplicate check),
cloned for a run. On the session's real broker and database; no timing is asserted."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from hopcast_content.adapters import dedup
from hopcast_content.domain.embedding import content_hash
from hopcast_stack.pytest_plugin import TestStack

BENCH = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(BENCH))
    try:
        import e2e
        import history
        import run

        yield {"e2e": e2e, "history": history, "run": run}
    finally:
        sys.path.remove(str(BENCH))


def test_history_texts_are_distinct_and_the_same_for_the_same_seed(bench: dict[str, ModuleType]) -> None:
    history = bench["history"]
    spec = history.Spec(drafts=900, orgs=7, seed=3, platforms=("MASTODON", "BLUESKY"))
    texts = history.history_texts(spec)
    assert len(set(texts.drafts)) == len(texts.drafts) == 900
    assert len(set(texts.materials)) == len(texts.materials)
    assert texts == history.history_texts(spec)
    assert texts != history.history_texts(history.Spec(900, 7, 4, spec.platforms))
    # A draft is written from its organization's material (material j of organization o is j * orgs + o).
    first_of_org_2 = texts.materials[2].removeprefix("Our ").split(" is ")[0]
    assert first_of_org_2 in texts.drafts[2]


def test_a_history_figure_has_the_fresh_figure_of_the_same_run_as_its_baseline(bench: dict[str, ModuleType]) -> None:
    rows = [
        {"name": "e2e_runs_per_s", "value": 200.0, "baseline_name": "raw", "baseline_value": 9000.0, "ratio": 0.02},
        {"name": "e2e_runs_per_s_history", "value": 150.0, "baseline_name": "raw", "baseline_value": 8000.0},
    ]
    history_row = bench["run"].beside_fresh(rows)[1]
    assert history_row["baseline_name"] == "e2e_runs_per_s (fresh databases)"
    assert history_row["baseline_value"] == 200.0
    assert history_row["ratio"] == 0.75
    assert (history_row["broker_baseline_name"], history_row["broker_baseline_value"]) == ("raw", 8000.0)


@pytest.mark.bench
@pytest.mark.timeout(300)
async def test_a_clone_with_history_holds_what_the_services_would_have_made(
    stack: TestStack, bench: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    e2e, history = bench["e2e"], bench["history"]
    server = stack.database_url("postgres")
    # An organization's 30-day window here holds about 23 embeddings: past 10, the plan for very
    # large organizations calls for the HNSW index.
    monkeypatch.setenv("CONTENT_DEDUP_EXACT_MAX_ROWS", "10")
    args = argparse.Namespace(history=90, orgs=3, seed=7, partitions=3, database_url=server)
    databases, token_keys, facts = await e2e._history_databases(args, stack.kafka_settings, stack.kafka.credentials)
    try:
        assert facts["built_now"] is True and token_keys
        world = e2e._world_ids(args.orgs, args.seed)
        # The history spans 90 days: each service's own purge took what a deployment's daily
        # purge would have (past a 30-day retention), before the template was kept.
        assert facts["purged"]["scheduler"]["schedule_runs"] > 0
        assert facts["purged"]["content"]["content_embeddings"] > 0
        assert facts["purged"]["publisher"]["pending_posts"] > 0
        # ... so the clone's own purge, seconds later, found at most the one run (a day apart
        # here) that aged past the retention since: without the template's, it would be 60.
        clone_purged = facts["clone_purged"]
        assert set(clone_purged) == set(databases)
        assert clone_purged["scheduler"]["schedule_runs"] <= 1 and clone_purged["publisher"]["pending_posts"] <= 1
        assert clone_purged["content"]["content_embeddings"] <= 2  # the run's draft and post
        assert facts["large_windows"]["hnsw"] is True and facts["large_windows"]["largest"] > 10
        cutoff = datetime.now(UTC) - timedelta(days=31)
        scheduler = await asyncpg.connect(databases["scheduler"][1])
        try:
            assert await scheduler.fetchval("SELECT count(*) FROM schedule_runs WHERE completed_at < $1", cutoff) == 0
            assert await scheduler.fetchval("SELECT count(*) FROM schedule_runs") > 0
            # A run that aged past the retention since the template was built goes before a run.
            await scheduler.execute(
                """UPDATE schedule_runs SET completed_at = now() - interval '40 days'
                   WHERE run_id = (SELECT run_id FROM schedule_runs ORDER BY completed_at LIMIT 1)"""
            )
            purged, _ = await history.purge_clones({"scheduler": databases["scheduler"]})
            assert purged["scheduler"]["schedule_runs"] == 1
        finally:
            await scheduler.close()

        billing = await asyncpg.connect(databases["billing"][1])
        try:
            # The set-up went through billing itself (a subscription per organization), and every
            # balance is still the sum of its ledger with the history's top-ups and debits in it.
            assert await billing.fetchval("SELECT count(*) FROM subscriptions") == args.orgs
            assert await billing.fetchval("SELECT count(*) FROM debits") == args.history
            unbalanced = await billing.fetch(
                """SELECT b.organization_id FROM balances b
                   WHERE b.period_credits + b.topup_credits
                         <> (SELECT sum(amount) FROM ledger l WHERE l.organization_id = b.organization_id)"""
            )
            assert unbalanced == []
        finally:
            await billing.close()

        content = await asyncpg.connect(databases["content"][1])
        try:
            await history.register_vector(content)
            # A history draft of the last 30 days is what the duplicate check finds for the same text.
            since = datetime.now(UTC) - timedelta(days=30)
            draft = await content.fetchrow(
                """SELECT p.organization_id, p.content, e.embedding FROM pending_posts p
                   JOIN content_embeddings e ON e.kind = 'PENDING_POST' AND e.source_id = p.id
                   WHERE p.organization_id = $1 AND p.created_at >= $2 ORDER BY p.created_at DESC LIMIT 1""",
                uuid.UUID(world[0].org),
                since,
            )
            assert draft is not None
            async with content.transaction():
                verdict = await dedup.check(
                    content,
                    draft["organization_id"],
                    since,
                    draft_vector=draft["embedding"].to_list(),
                    draft_hash=content_hash(draft["content"]),
                    material_id=uuid.uuid4(),
                    material_vector=None,
                    material_hash="0" * 64,
                )
            assert verdict.exact_copy and verdict.draft_similarity > 0.999
            # Drafts past the duplicate window are purged; the index the plan calls for is there.
            old_drafts = "SELECT count(*) FROM content_embeddings WHERE kind <> 'MATERIAL' AND created_at < $1"
            assert await content.fetchval(old_drafts, cutoff) == 0
            has_index = "SELECT to_regclass('content_embeddings_hnsw') IS NOT NULL"
            assert await content.fetchval(has_index)
            # Windows far from the limit get no index (each insert would pay for it).
            await content.execute("DROP INDEX content_embeddings_hnsw")
            monkeypatch.setenv("CONTENT_DEDUP_EXACT_MAX_ROWS", "1000")
            assert (await history.index_large_windows(content))["hnsw"] is False
            assert not await content.fetchval(has_index)
            monkeypatch.setenv("CONTENT_DEDUP_EXACT_MAX_ROWS", "10")
            assert (await history.index_large_windows(content))["hnsw"] is True
            assert await content.fetchval(has_index)
            assert await content.fetchval("SELECT count(*) FROM brands") == args.orgs
            # The angles' totals were made from the history's posts, and the triggers that keep
            # them (migration 0009), off for the load, are on again.
            mismatched = await content.fetchval(
                """SELECT count(*) FROM (
                       SELECT brand_profile_id, organization_id, angle, count(*) AS n,
                              sum(engagement_rate::numeric) AS total,
                              sum(engagement_rate::numeric * engagement_rate::numeric) AS squares
                       FROM posts WHERE engagement_rate IS NOT NULL AND deleted_at IS NULL GROUP BY 1, 2, 3) p
                   FULL JOIN angle_totals t USING (brand_profile_id, organization_id, angle)
                   WHERE (p.n, p.total, p.squares) IS DISTINCT FROM (t.n, t.total, t.squares)"""
            )
            assert mismatched == 0 and await content.fetchval("SELECT count(*) FROM angle_totals") > 0
            enabled = "SELECT count(*) FROM pg_trigger WHERE tgname = ANY($1::text[]) AND tgenabled = 'O'"
            triggers = list(history.ANGLE_TOTALS_TRIGGERS)
            assert await content.fetchval(enabled, triggers) == len(triggers) == 3
            assert await content.fetchval("SELECT count(*) FROM materials WHERE status <> 'USED'") == 0
        finally:
            await content.close()

        publisher = await asyncpg.connect(databases["publisher"][1])
        try:
            assert await publisher.fetchval("SELECT count(*) FROM posts") == 2 * args.history
            # Every post went out from an account the set-up connected.
            orphans = await publisher.fetchval(
                """SELECT count(*) FROM posts p
                   WHERE NOT EXISTS (SELECT FROM social_accounts a WHERE a.id = p.social_account_id)"""
            )
            assert orphans == 0
            finished = "SELECT count(*) FROM pending_posts WHERE completed_at < $1"
            assert await publisher.fetchval(finished, cutoff) == 0
        finally:
            await publisher.close()

        # The second time, the templates are found, not built.
        again, _, facts_again = await e2e._history_databases(args, stack.kafka_settings, stack.kafka.credentials)
        for db_name, _ in again.values():
            await e2e.drop_database(server, db_name)
        assert facts_again["built_now"] is False
    finally:
        for db_name, _ in databases.values():
            await e2e.drop_database(server, db_name)
        for name in facts["templates"]:
            await e2e.drop_database(server, name)
