"""Account choice, run outcomes, engagement rate and the text of a post."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hopcast_publisher.domain.accounts import LinkedAccount, pick_accounts, pick_publishing_account
from hopcast_publisher.domain.engagement import engagement_rate
from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.posts import idempotency_key, post_id_for
from hopcast_shared.contract import RunOutcome
from hopcast_shared.contract.text import post_text

T0 = datetime(2027, 3, 1, tzinfo=UTC)


def account(
    platform: str = "BLUESKY",
    *,
    default: bool = False,
    active: bool = True,
    deleted: bool = False,
    linked_days: int = 0,
) -> LinkedAccount:
    return LinkedAccount(uuid.uuid4(), platform, default, active, deleted, T0 + timedelta(days=linked_days))


def test_the_default_account_wins() -> None:
    default = account(default=True, linked_days=5)
    older = account(linked_days=1)
    assert pick_publishing_account([older, default], "BLUESKY") is default


def test_without_a_usable_default_the_longest_linked_active_one_is_used() -> None:
    deleted_default = account(default=True, deleted=True)
    inactive = account(active=False, linked_days=1)
    newer = account(linked_days=3)
    older = account(linked_days=2)
    assert pick_publishing_account([deleted_default, inactive, newer, older], "BLUESKY") is older
    inactive_default = account(default=True, active=False)
    assert pick_publishing_account([inactive_default, newer], "BLUESKY") is newer


def test_no_usable_account_means_none() -> None:
    assert pick_publishing_account([account(deleted=True), account(active=False)], "BLUESKY") is None
    assert pick_publishing_account([account("MASTODON", default=True)], "BLUESKY") is None
    assert pick_publishing_account([], "BLUESKY") is None


def test_each_platform_gets_its_own_account() -> None:
    bsky, masto = account("BLUESKY", default=True), account("MASTODON")
    choice = pick_accounts([bsky, masto], ["BLUESKY", "MASTODON", "LINKEDIN"])
    assert choice == {"BLUESKY": bsky, "MASTODON": masto, "LINKEDIN": None}


def test_run_outcomes() -> None:
    assert run_outcome([True, True]) is RunOutcome.PUBLISHED
    assert run_outcome([True, False]) is RunOutcome.PARTIALLY_PUBLISHED
    assert run_outcome([False, False]) is RunOutcome.PUBLISH_FAILED
    assert run_outcome([]) is RunOutcome.PUBLISH_FAILED
    assert run_outcome([True], organization_active=False) is RunOutcome.ORGANIZATION_INACTIVE
    assert run_outcome([True], brand_active=False) is RunOutcome.BRAND_INACTIVE


def test_engagement_rate() -> None:
    assert engagement_rate(12, 3, 2, 480) == 17 / 480
    assert engagement_rate(5, 1, 1, 0) == 0.0
    assert engagement_rate(0, 0, 0, 100) == 0.0
    assert engagement_rate(300, 100, 100, 250) == 2.0  # more interactions than impressions is reported as is


def test_post_text_adds_missing_hashtags_and_media_links() -> None:
    text = post_text(
        "Fresh roast today #coffee", ["#coffee", "freshroast", "#FreshRoast"], ["https://cdn.example/a.jpg"]
    )
    assert text == "Fresh roast today #coffee\n\n#freshroast\n\nhttps://cdn.example/a.jpg"
    assert post_text("Plain", []) == "Plain"


def test_idempotency_key_is_stable_per_pending_post_and_platform() -> None:
    pid = uuid.uuid4()
    assert idempotency_key(pid, "BLUESKY") == idempotency_key(pid, "BLUESKY")
    assert idempotency_key(pid, "BLUESKY") != idempotency_key(pid, "MASTODON")
    assert idempotency_key(pid, "BLUESKY") != idempotency_key(uuid.uuid4(), "BLUESKY")


def test_a_post_id_is_the_same_for_a_pending_post_and_platform_and_only_for_it() -> None:
    pending = uuid.uuid4()
    assert post_id_for(pending, "BLUESKY") == post_id_for(pending, "BLUESKY")
    assert post_id_for(pending, "BLUESKY") != post_id_for(pending, "MASTODON")
    assert post_id_for(pending, "BLUESKY") != post_id_for(uuid.uuid4(), "BLUESKY")
    assert post_id_for(pending, "BLUESKY").version == 5
