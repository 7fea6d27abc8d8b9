"""The exact text of a draft on each of its platforms, by that platform's own rule
(`hopcast_shared.text_rules`): the content and its hashtags (`post_text`), made to fit where
it does not. Hashtags give way first (from the end), then the content is shortened on
grapheme boundaries outside every URL, mention and hashtag, with an ellipsis. The draft's
media are not in the text: every platform gets them as media (issue 18)."""

from __future__ import annotations

from collections.abc import Sequence

from hopcast_content.domain.drafting import Draft
from hopcast_shared.contract import Platform
from hopcast_shared.contract.text import post_text
from hopcast_shared.text_rules import TextRule, rule_for, truncate


def text_for(draft: Draft, rule: TextRule) -> str:
    """The draft's text under `rule`; it passes the rule whenever any text of it can."""
    content, tags = draft.content.strip(), list(draft.hashtags)
    whole = post_text(content, tags)
    if rule.fits(whole):
        return whole
    while tags and not rule.fits(post_text(content, tags)):
        tags.pop()
    suffix = post_text("", tags)
    cut = truncate(content, rule, suffix="\n\n" + suffix if suffix else "")
    text = post_text(cut, tags) if cut else ""
    if text and rule.fits(text):
        return text
    # Nothing of the composition fits (a rule far tighter than any draft): the plain cut.
    return truncate(whole, rule)


def texts_for(draft: Draft, platforms: Sequence[Platform]) -> dict[Platform, str]:
    """The text to post on each platform (Mastodon by the default instance limit: the
    publisher checks against the instance's own)."""
    return {p: text_for(draft, rule_for(p)) for p in platforms}
