"""X (Twitter): the weighted length of twitter-text's v3 configuration. The text is NFC
normalized; every URL weighs 23 characters; an emoji, whatever its code points (a family, a
flag, a skin tone), weighs 2; a code point in the ranges below weighs 1, any other 2 (CJK,
most symbols). A post may weigh 280 and must not be empty or hold U+FFFE, U+FEFF or U+FFFF."""

from __future__ import annotations

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


def code_point_weight(ch: str) -> int:
    cp = ord(ch)
    return SCALE if any(lo <= cp <= hi for lo, hi in LIGHT_RANGES) else DEFAULT_WEIGHT


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
    weight, i, invalid = 0, 0, False
    while i < len(normalized):
        if i in url_at:
            weight += TRANSFORMED_URL_LENGTH * SCALE
            end = url_at[i]
        elif i in emoji_at:
            weight += DEFAULT_WEIGHT
            end = emoji_at[i]
        else:
            weight += code_point_weight(normalized[i])
            end = i + 1
        # twitter-text checks only the first code point of an entity for invalid characters.
        invalid = invalid or normalized[i] in INVALID_CHARACTERS
        i = end
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
