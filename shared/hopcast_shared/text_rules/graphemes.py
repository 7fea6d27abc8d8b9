"""Grapheme clusters (what a reader sees as one character, UAX #29 extended clusters via the
`regex` module's `\\X`) and which of them are emoji: a cut between two code points of one
cluster turns a family emoji into another emoji, or strips an accent."""

from __future__ import annotations

from collections.abc import Iterator

import regex

_CLUSTER = regex.compile(r"\X")
# An emoji as twitter-text's emoji parser (twemoji) finds one: a pictograph in emoji style (by
# default, or asked for with U+FE0F, or given a skin tone), with its skin tone, joined by ZWJ
# to more of them (a family, a profession); a flag (two regional indicators); a subdivision
# flag (black flag and tags); a keycap (`1⃣`, `#️⃣`). A lone pictograph in text style (`©`,
# `®`, `‼`) is a character, weighed as such.
_STYLED = r"(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}(?:\uFE0F|(?=\p{Emoji_Modifier})))"
_ELEMENT = rf"{_STYLED}\p{{Emoji_Modifier}}?\uFE0F?"
_EMOJI = regex.compile(
    r"[\U0001F1E6-\U0001F1FF]{2}"
    r"|\U0001F3F4[\U000E0020-\U000E007E]+\U000E007F"
    r"|[0-9#*]\uFE0F?\u20E3"
    rf"|{_ELEMENT}(?:\u200D{_ELEMENT})*"
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
    """How many grapheme clusters. In ASCII only CR LF is one cluster of two code points (UAX #29
    GB3; every other ASCII character is a cluster of its own), so most drafts are counted
    without the regex."""
    if text.isascii():
        return len(text) - text.count("\r\n")
    return len(_CLUSTER.findall(text))


def emoji_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each emoji of `text`, found as twemoji finds them: anywhere, one after
    another."""
    for m in _EMOJI.finditer(text):
        yield m.start(), m.end()


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Java and JavaScript servers count a string."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
