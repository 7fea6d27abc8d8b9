"""Each platform's text rule, exactly: how the platform counts a post's text, its limit, and
truncation that the rule takes (on grapheme boundaries, never inside a URL, mention or
hashtag). Content drafts one text per platform by these rules; the publisher checks the text
against them before calling a platform."""

from __future__ import annotations

from hopcast_shared.text_rules.base import Measure, TextRule
from hopcast_shared.text_rules.bluesky import BlueskyRule
from hopcast_shared.text_rules.facebook import FACEBOOK
from hopcast_shared.text_rules.instagram import InstagramRule
from hopcast_shared.text_rules.linkedin import LINKEDIN
from hopcast_shared.text_rules.mastodon import DEFAULT_LIMIT as MASTODON_DEFAULT_LIMIT
from hopcast_shared.text_rules.mastodon import MastodonRule
from hopcast_shared.text_rules.others import REDDIT, TIKTOK, YOUTUBE
from hopcast_shared.text_rules.threads import THREADS
from hopcast_shared.text_rules.truncation import ELLIPSIS, truncate
from hopcast_shared.text_rules.x import XRule, parse_tweet

RULES: dict[str, TextRule] = {
    "TWITTER": XRule(),
    "MASTODON": MastodonRule(),
    "BLUESKY": BlueskyRule(),
    "LINKEDIN": LINKEDIN,
    "THREADS": THREADS,
    "INSTAGRAM": InstagramRule(),
    "FACEBOOK": FACEBOOK,
    "TIKTOK": TIKTOK,
    "YOUTUBE": YOUTUBE,
    "REDDIT": REDDIT,
}


def rule_for(platform: str, *, mastodon_limit: int | None = None) -> TextRule:
    """The rule of `platform` (a Platform or its name); Mastodon's with the instance's limit
    when it is known."""
    name = str(getattr(platform, "value", platform))
    if name == "MASTODON" and mastodon_limit is not None:
        return MastodonRule(mastodon_limit)
    return RULES[name]


__all__ = [
    "ELLIPSIS",
    "MASTODON_DEFAULT_LIMIT",
    "RULES",
    "Measure",
    "TextRule",
    "parse_tweet",
    "rule_for",
    "truncate",
]
