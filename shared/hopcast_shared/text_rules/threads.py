"""Threads: a post's text holds at most 500 characters, and "emojis are counted as the number
of UTF-8 bytes" (developers.facebook.com/docs/threads/posts, Limitations; the page points at
grapheme-splitter for what a character is). So a grapheme cluster counts 1, and an emoji its
UTF-8 length: a face (U+1F637) 4, a family joined by ZWJ 18."""

from __future__ import annotations

from dataclasses import dataclass

from hopcast_shared.text_rules.base import Measure, TextRule, over
from hopcast_shared.text_rules.graphemes import emoji_spans, grapheme_length

MAX_CHARACTERS = 500


def threads_length(text: str) -> int:
    """The length of `text` as Threads counts it: clusters outside emoji, plus each emoji's bytes."""
    length, at = 0, 0
    for start, end in emoji_spans(text):
        length += grapheme_length(text[at:start]) + len(text[start:end].encode("utf-8"))
        at = end
    return length + grapheme_length(text[at:])


@dataclass(frozen=True)
class ThreadsRule(TextRule):
    limit: int = MAX_CHARACTERS
    platform: str = "THREADS"

    def measure(self, text: str) -> Measure:
        length = threads_length(text)
        empty = ("is empty",) if not text.strip() else ()
        return Measure(length, self.limit, "characters", over(length, self.limit, "characters", *empty))


THREADS = ThreadsRule()
