"""Each platform's rule in words, for a writer (the LLM drafting prompt): its limit in its own
unit and what counts otherwise than a letter, taken from the rules themselves so the words
never drift from what is checked."""

from __future__ import annotations

from hopcast_shared.text_rules import bluesky, instagram, x
from hopcast_shared.text_rules.base import TextRule
from hopcast_shared.text_rules.bluesky import BlueskyRule
from hopcast_shared.text_rules.counted import CharacterLimit
from hopcast_shared.text_rules.instagram import InstagramRule
from hopcast_shared.text_rules.mastodon import MastodonRule
from hopcast_shared.text_rules.x import XRule


def describe(rule: TextRule) -> str:
    """`rule` as a writer needs it, e.g. "at most 280 weighted characters: CJK characters and
    emoji count 2, every link counts 23"."""
    if isinstance(rule, XRule):
        return (
            f"at most {x.MAX_WEIGHTED_LENGTH} weighted characters: CJK characters and emoji count 2,"
            f" every link counts {x.TRANSFORMED_URL_LENGTH}"
        )
    if isinstance(rule, MastodonRule):
        return (
            f"at most {rule.limit} characters: every link counts {rule.url_length},"
            " a mention @user@domain counts as @user"
        )
    if isinstance(rule, BlueskyRule):
        return (
            f"at most {bluesky.MAX_GRAPHEMES} characters as a reader sees them (an emoji counts 1)"
            f" and {bluesky.MAX_BYTES} bytes of UTF-8; links count in full"
        )
    if isinstance(rule, InstagramRule):
        return f"at most {instagram.MAX_CHARACTERS} characters and {instagram.MAX_HASHTAGS} hashtags"
    if isinstance(rule, CharacterLimit):
        return f"at most {rule.limit} characters (an emoji counts 2)"
    measure = rule.measure("x")
    return f"at most {measure.limit} {measure.unit}"
