"""A reviewer's edit checked against each platform's own counting rule, as a draft is."""

from __future__ import annotations

from hopcast_content.domain.edits import rule_refusal
from hopcast_shared.contract import EditRefusalReason, Platform


def test_an_edit_within_every_rule_is_not_refused() -> None:
    texts = {Platform.BLUESKY: "Fresh beans, Tuesday. #coffee", Platform.TWITTER: "故" * 140}
    assert rule_refusal(texts, ["BLUESKY", "TWITTER", "MASTODON"]) is None


def test_an_over_long_edit_is_refused_naming_the_platform_and_the_rule() -> None:
    # 141 CJK characters are 282 of X's weighted 280, though only 141 code points.
    refusal = rule_refusal({Platform.TWITTER: "故" * 141, Platform.BLUESKY: "ok"}, ["BLUESKY", "TWITTER"])
    assert refusal is not None
    assert (refusal.reason, refusal.platform) == (EditRefusalReason.TEXT_BREAKS_RULE, Platform.TWITTER)
    assert "282 of X's 280" in refusal.detail
    assert "故" not in refusal.detail  # the detail says why, never the text


def test_an_edit_for_a_platform_the_post_is_not_for_is_refused() -> None:
    refusal = rule_refusal({Platform.LINKEDIN: "Hello"}, ["BLUESKY"])
    assert refusal is not None
    assert (refusal.reason, refusal.platform) == (EditRefusalReason.NOT_A_PLATFORM_OF_THE_POST, Platform.LINKEDIN)
