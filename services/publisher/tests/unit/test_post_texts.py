"""Which text the publisher posts on a platform, and when a platform's rule refuses it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hopcast_publisher.domain.publishing import PublishingPost, text_refusal


def pending(**texts: str) -> PublishingPost:
    ids = [uuid.uuid4() for _ in range(5)]
    return PublishingPost(
        ids[0], ids[1], ids[2], ids[3], ids[4], uuid.uuid4(), datetime.now(UTC),
        "Spring menu is here.", ["#coffee"], ["https://cdn.example.com/a.jpg"],
        list(texts) or ["LINKEDIN"], "USER_BENEFIT", None, None, texts=texts,
    )  # fmt: skip


def test_the_drafted_text_of_a_platform_is_posted_exactly() -> None:
    post = pending(TWITTER="故" * 140, BLUESKY="Spring 🌸")
    assert post.text_for("TWITTER") == "故" * 140
    assert post.text_for("BLUESKY") == "Spring 🌸"


def test_a_draft_from_before_texts_is_composed_without_its_media_links() -> None:
    # Its media go to the platform as media (issue 18), not as links in the text.
    assert pending().text_for("LINKEDIN") == "Spring menu is here.\n\n#coffee"


def test_a_text_the_rule_refuses_is_named_with_why() -> None:
    assert text_refusal("TWITTER", "故" * 140) is None
    assert text_refusal("TWITTER", "故" * 141) == (
        "the text breaks TWITTER's rule, not sent: weighs 282 of X's 280 (CJK and emoji weigh 2, URLs 23)"
    )
    assert "301 graphemes over the limit of 300" in (text_refusal("BLUESKY", "a" * 301) or "")
    assert "31 hashtags" in (text_refusal("INSTAGRAM", " ".join(f"#t{i}" for i in range(31))) or "")
    assert text_refusal("MASTODON", "x " + "https://example.com/" + "a" * 600) is None
