"""Shortening a text until a platform's rule takes it: cut only between grapheme clusters and
never inside a URL, mention or hashtag (a cut entity is dropped whole), end with an ellipsis
when anything was cut, and keep a fixed `suffix` (the post's hashtags and media links) whole."""

from __future__ import annotations

from hopcast_shared.text_rules.base import TextRule
from hopcast_shared.text_rules.entities import entity_spans
from hopcast_shared.text_rules.graphemes import boundaries

ELLIPSIS = "…"
# A word boundary this close to the longest cut that fits is preferred to cutting a word.
_WORD_SLACK = 0.6
_TRIM = " \t\n,;:-"


def cut_points(text: str) -> list[int]:
    """Offsets `text` may be cut at: grapheme boundaries outside every entity."""
    inside = {i for start, end in entity_spans(text) for i in range(start + 1, end)}
    return [b for b in boundaries(text) if b not in inside]


def shortened(text: str, cut: int) -> str:
    """`text` cut at `cut`, trimmed, with the ellipsis (the text itself when nothing is cut)."""
    if cut >= len(text):
        return text
    head = text[:cut].rstrip(_TRIM)
    return head + ELLIPSIS if head else ""


def truncate(text: str, rule: TextRule, *, suffix: str = "") -> str:
    """The longest shortening of `text` (see `shortened`) for which `shortened + suffix` passes
    `rule`; `text + suffix` when it passes already; "" when no cut fits."""
    if rule.fits(text + suffix):
        return text
    points = [p for p in cut_points(text) if p < len(text)]
    lo, hi = 0, len(points) - 1
    best = -1
    # The measure grows with the cut almost everywhere: search, then make sure.
    while lo <= hi:
        mid = (lo + hi) // 2
        if rule.fits(shortened(text, points[mid]) + suffix):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    while best >= 0 and not rule.fits(shortened(text, points[best]) + suffix):
        best -= 1
    if best < 0:
        return ""
    cut = points[best]
    words = [p for p in points[: best + 1] if p > 0 and text[p - 1].isspace()]
    if words and words[-1] >= cut * _WORD_SLACK and rule.fits(shortened(text, words[-1]) + suffix):
        cut = words[-1]
    return shortened(text, cut)
