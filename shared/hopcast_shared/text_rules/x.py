"""X (Twitter): the weighted length of twitter-text's v3 configuration. The text is NFC
normalized; every URL weighs 23 characters; an emoji, whatever its code points (a family, a
flag, a skin tone), weighs 2; a code point in the ranges below weighs 1, any other 2 (CJK,
most symbols). A post may weigh 280 and must not be empty or hold U+FFFE, U+FEFF or U+FFFF."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from hopcast_shared.text_rules.base import Measure, TextRule
from hopcast_shared.text_rules.entities import extract_urls
from hopcast_shared.text_rules.graphemes import emoji_spans

SCALE = 100
DEFAULT_WEIGHT = 200
LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
TRANSFORMED_URL_LENGTH = 23
MAX_WEIGHTED_LENGTH = 280
INVALID_CHARACTERS = frozenset("\ufffe\ufeff\uffff")


# The code points outside LIGHT_RANGES: each weighs DEFAULT_WEIGHT instead of SCALE.
_HEAVY = re.compile("[^" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in LIGHT_RANGES) + "]")


def _plain_weight(text: str) -> int:
    """The weight of text with no URL or emoji in it: code point by code point."""
    return SCALE * len(text) + (DEFAULT_WEIGHT - SCALE) * len(_HEAVY.findall(text))


@dataclass(frozen=True)
class Tweet:
    """twitter-text's `parseTweet` result (offsets in code points of the NFC text)."""

    weighted_length: int
    valid: bool
    permillage: int
    has_invalid_characters: bool


def parse_tweet(text: str, *, emoji_parsing: bool = True) -> Tweet:
    """The weight of `text` as twitter-text counts it (v3 configuration; `emoji_parsing=False`
    is v2, where every code point of an emoji is weighed on its own)."""
    normalized = unicodedata.normalize("NFC", text)
    url_at = {u.start: u.end for u in extract_urls(normalized)}
    emoji_at = {start: end for start, end in emoji_spans(normalized)} if emoji_parsing else {}
    # As twitter-text walks the text: an entity starting where the walk is counts whole (a
    # URL before an emoji), anything else code point by code point.
    weight, i = 0, 0
    for start in sorted(url_at.keys() | emoji_at.keys()):
        if start < i:
            continue
        weight += _plain_weight(normalized[i:start])
        if start in url_at:
            weight += TRANSFORMED_URL_LENGTH * SCALE
            i = url_at[start]
        else:
            weight += DEFAULT_WEIGHT
            i = emoji_at[start]
    weight += _plain_weight(normalized[i:])
    # No URL or emoji holds U+FFFE, U+FEFF or U+FFFF, so twitter-text meets each one it holds.
    invalid = not INVALID_CHARACTERS.isdisjoint(normalized)
    length = weight // SCALE
    valid = not invalid and 0 < length <= MAX_WEIGHTED_LENGTH
    return Tweet(length, valid, length * 1000 // MAX_WEIGHTED_LENGTH, invalid)


class XRule(TextRule):
    platform = "TWITTER"

    def measure(self, text: str) -> Measure:
        tweet = parse_tweet(text)
        problems = []
        if tweet.weighted_length > MAX_WEIGHTED_LENGTH:
            problems.append(
                f"weighs {tweet.weighted_length} of X's {MAX_WEIGHTED_LENGTH} (CJK and emoji weigh 2, URLs 23)"
            )
        if tweet.has_invalid_characters:
            problems.append("holds U+FFFE, U+FEFF or U+FFFF, which X refuses")
        if not text.strip():
            problems.append("is empty")
        return Measure(tweet.weighted_length, MAX_WEIGHTED_LENGTH, "weighted characters", tuple(problems))
