"""Bluesky: an `app.bsky.feed.post` record's text holds at most 300 grapheme clusters and
3,000 bytes of UTF-8 (the lexicon's maxGraphemes and maxLength). URLs count as written:
Bluesky shortens nothing."""

from __future__ import annotations

from hopcast_shared.text_rules.base import Measure, TextRule, over
from hopcast_shared.text_rules.graphemes import grapheme_length

MAX_GRAPHEMES = 300
MAX_BYTES = 3000


class BlueskyRule(TextRule):
    platform = "BLUESKY"

    def measure(self, text: str) -> Measure:
        length = grapheme_length(text)
        size = len(text.encode("utf-8"))
        too_big = (f"{size} bytes of UTF-8 over the limit of {MAX_BYTES}",) if size > MAX_BYTES else ()
        return Measure(length, MAX_GRAPHEMES, "graphemes", over(length, MAX_GRAPHEMES, "graphemes", *too_big))
