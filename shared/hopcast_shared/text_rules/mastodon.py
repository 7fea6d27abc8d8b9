"""Mastodon: what the server's StatusLengthValidator counts. Every URL written with http(s)://
counts 23 characters whatever its length (the instance's `characters_reserved_per_url`), a
remote mention `@user@domain` counts as `@user`, and the rest is counted in grapheme
clusters. The limit is the instance's own (`configuration.statuses.max_characters` of
/api/v2/instance), 500 unless told."""

from __future__ import annotations

from dataclasses import dataclass

from hopcast_shared.text_rules.base import Measure, TextRule, over
from hopcast_shared.text_rules.entities import MENTION, extract_urls
from hopcast_shared.text_rules.graphemes import grapheme_length

DEFAULT_LIMIT = 500
URL_LENGTH = 23


def countable_text(text: str, url_length: int = URL_LENGTH) -> str:
    """The text as Mastodon counts it: URLs replaced by `url_length` characters (the instance's
    `characters_reserved_per_url`, 23 unless told), remote mentions by local."""
    entities: list[tuple[int, int, str]] = [
        (u.start, u.end, "x" * url_length) for u in extract_urls(text, without_protocol=False)
    ]
    for m in MENTION.finditer(text):
        if m.group(2) and not any(s < m.end() and m.start() < e for s, e, _ in entities):
            entities.append((m.start(), m.end(), "@" + m.group(1)))
    out, at = [], 0
    for start, end, replacement in sorted(entities):
        out += [text[at:start], replacement]
        at = end
    out.append(text[at:])
    return "".join(out)


@dataclass(frozen=True)
class MastodonRule(TextRule):
    limit: int = DEFAULT_LIMIT
    url_length: int = URL_LENGTH
    platform = "MASTODON"

    def measure(self, text: str) -> Measure:
        length = grapheme_length(countable_text(text, self.url_length))
        empty = ("is empty",) if not text.strip() else ()
        return Measure(length, self.limit, "characters", over(length, self.limit, "characters", *empty))
