"""Grapheme clusters (what a reader sees as one character, UAX #29 extended clusters via the
`regex` module's `\\X`) and which of them are emoji: a cut between two code points of one
cluster turns a family emoji into another emoji, or strips an accent."""

from __future__ import annotations

from collections.abc import Iterator

import regex

_CLUSTER = regex.compile(r"\X")
# An emoji cluster as twitter-text's emoji parser (twemoji) sees it: one that starts with an
# extended pictographic code point (emoji, whatever their presentation), a pair of regional
# indicators (a flag), or a keycap sequence (`1⃣`, `#️⃣`).
_EMOJI = regex.compile(
    r"\p{Extended_Pictographic}|[\U0001F1E6-\U0001F1FF]{2}|[0-9#*]\uFE0F?\u20E3",
)


def clusters(text: str) -> list[str]:
    """The text's grapheme clusters, in order."""
    return _CLUSTER.findall(text)


def cluster_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) code-point offsets of each grapheme cluster."""
    for m in _CLUSTER.finditer(text):
        yield m.start(), m.end()


def boundaries(text: str) -> list[int]:
    """Every offset a text may be cut at without splitting a cluster: 0, ..., len(text)."""
    return [0, *(end for _, end in cluster_spans(text))]


def grapheme_length(text: str) -> int:
    return sum(1 for _ in _CLUSTER.finditer(text))


def emoji_prefix(cluster: str) -> int:
    """How many code points at the start of `cluster` form one emoji (0 when it is not one)."""
    m = _EMOJI.match(cluster)
    if m is None:
        return 0
    if m.group().startswith(tuple("0123456789#*")):
        return m.end()
    # An emoji sequence (modifiers, ZWJ sequences, tags, variation selectors) is the cluster.
    return len(cluster)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Java and JavaScript servers count a string."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
