"""Shortening a text until a platform's rule takes it: cut only between grapheme clusters and
never inside a URL, mention or hashtag (an entity that does not fit is dropped whole), end
with an ellipsis when anything was cut, and keep a fixed `suffix` (the post's hashtags and
media links) whole after it."""

from __future__ import annotations

from collections.abc import Sequence

from hopcast_shared.text_rules.base import TextRule
from hopcast_shared.text_rules.entities import entity_spans
from hopcast_shared.text_rules.graphemes import boundaries

ELLIPSIS = "…"
# A word boundary this close to the longest cut that fits is preferred to cutting a word.
_WORD_SLACK = 0.6
# What is not left dangling before the ellipsis.
_TRIM = " \t\r\n,;:-"


def cut_points(text: str) -> list[int]:
    """Offsets `text` may be cut at: grapheme boundaries outside every entity."""
    inside = {i for start, end in entity_spans(text) for i in range(start + 1, end)}
    return [b for b in boundaries(text) if b not in inside]


def _shortened(text: str, points: Sequence[int], index: int) -> str:
    """`text` cut at `points[index]`, less the spaces and punctuation that would dangle before
    the ellipsis (removed a whole segment between cut points at a time), with the ellipsis."""
    while index > 0 and not text[points[index - 1] : points[index]].strip(_TRIM):
        index -= 1
    head = text[: points[index]]
    return head + ELLIPSIS if head else ""


def truncate(text: str, rule: TextRule, *, suffix: str = "") -> str:
    """The longest shortening of `text` for which `shortened + suffix` passes `rule`: `text`
    itself when `text + suffix` passes already, "" when no cut does."""
    if rule.fits(text + suffix):
        return text
    points = [p for p in cut_points(text) if p < len(text)]

    def fits(index: int) -> bool:
        return rule.fits(_shortened(text, points, index) + suffix)

    # The measure grows with the cut almost everywhere (a shorter text may turn into a URL):
    # search, then make sure.
    lo, hi, best = 0, len(points) - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    while best > 0 and not fits(best):
        best -= 1
    if best <= 0:
        return ""
    words = [i for i in range(1, best + 1) if text[points[i] - 1].isspace()]
    if words and points[words[-1]] >= points[best] * _WORD_SLACK and fits(words[-1]):
        best = words[-1]
    return _shortened(text, points, best)
