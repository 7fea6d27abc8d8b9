"""Each platform's text rule against what nobody here wrote: the twitter-text project's
conformance cases and the official twitter-text run on generated texts, plus the rules of the
other platforms on texts whose counts are known."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopcast_shared.text_rules import ELLIPSIS, rule_for, truncate
from hopcast_shared.text_rules.entities import extract_urls, hashtags
from hopcast_shared.text_rules.mastodon import countable_text
from hopcast_shared.text_rules.x import parse_tweet

DATA = Path(__file__).parent.parent / "data" / "twitter-text"
CONFORMANCE = yaml.safe_load((DATA / "validate.yml").read_text(encoding="utf-8"))["tests"]
# Which configuration each weighted-length section of validate.yml is run with (twitter-text's
# own test runners: v2 weighs every code point of an emoji, v3 counts an emoji once).
SECTIONS = {
    "WeightedTweetsCounterTest": False,
    "WeightedTweetsWithDiscountedEmojiCounterTest": True,
    "UnicodeDirectionalMarkerCounterTest": True,
}
CASES = [
    pytest.param(case, emoji, id=f"{section}: {case['description']}")
    for section, emoji in SECTIONS.items()
    for case in CONFORMANCE[section]
]


def test_the_vendored_conformance_file_has_every_weighted_case() -> None:
    assert [len(CONFORMANCE[s]) for s in SECTIONS] == [20, 22, 2]


@pytest.mark.parametrize(("case", "emoji_parsing"), CASES)
def test_x_weighted_length_matches_twitter_text_conformance(case: dict[str, Any], emoji_parsing: bool) -> None:
    tweet = parse_tweet(case["text"], emoji_parsing=emoji_parsing)
    expected = case["expected"]
    assert (tweet.weighted_length, tweet.valid, tweet.permillage) == (
        expected["weightedLength"],
        expected["valid"],
        expected["permillage"],
    )


def test_x_rule_agrees_with_the_official_twitter_text_on_generated_texts() -> None:
    oracle = json.loads((DATA / "differential.json").read_text(encoding="utf-8"))
    assert oracle["generator"] == "twitter-text 3.1.0" and len(oracle["cases"]) == 1000
    disagreements = []
    for case in oracle["cases"]:
        text = case["text"]
        normalized = unicodedata.normalize("NFC", text)
        urls = [normalized[u.start : u.end] for u in extract_urls(normalized)]
        tweet = parse_tweet(text)
        if (tweet.weighted_length, tweet.valid, urls) != (case["weightedLength"], case["valid"], case["urls"]):
            disagreements.append((text, tweet, case))
    assert disagreements == []
    # The corpus reaches what matters: URLs of every kind, over-long texts, emoji.
    assert sum(bool(c["urls"]) for c in oracle["cases"]) > 300
    assert sum(not c["valid"] for c in oracle["cases"]) > 100


def test_x_counts_cjk_emoji_and_urls_as_x_does() -> None:
    x = rule_for("TWITTER")
    assert x.measure("故" * 140).length == 280 and x.fits("故" * 140)
    assert not x.fits("故" * 141)
    assert x.measure("👨‍👩‍👧‍👦" * 140).length == 280
    assert x.measure("see https://example.com/" + "a" * 300).length == 4 + 23
    assert x.measure("e\u0301").length == 1  # NFC first
    assert "weighs 282" in x.problems("故" * 141)[0]


def test_mastodon_counts_urls_23_remote_mentions_as_local_and_takes_the_instance_limit() -> None:
    text = "Hi @alice@mastodon.social, read https://example.com/" + "x" * 100 + " now"
    assert countable_text(text) == "Hi @alice, read " + "x" * 23 + " now"
    assert rule_for("MASTODON").measure(text).length == len("Hi @alice, read ") + 23 + 4
    assert rule_for("MASTODON").fits("a" * 500) and not rule_for("MASTODON").fits("a" * 501)
    assert rule_for("MASTODON", mastodon_limit=5000).fits("a" * 4000)
    # A URL without a protocol is not shortened by Mastodon.
    assert rule_for("MASTODON").measure("example.com/" + "a" * 40).length == 52
    assert rule_for("MASTODON").measure("👨‍👩‍👧‍👦").length == 1


def test_bluesky_counts_graphemes_and_bytes() -> None:
    bluesky = rule_for("BLUESKY")
    assert bluesky.fits("👨‍👩‍👧‍👦" * 120)  # 120 graphemes, 3,000 bytes
    assert not bluesky.fits("👨‍👩‍👧‍👦" * 121)  # 121 graphemes but 3,025 bytes
    assert "bytes" in bluesky.problems("👨‍👩‍👧‍👦" * 121)[0]
    assert bluesky.fits("a" * 300) and not bluesky.fits("a" * 301)


def test_the_character_limits_count_utf16_units() -> None:
    assert rule_for("LINKEDIN").fits("a" * 3000) and not rule_for("LINKEDIN").fits("a" * 3001)
    assert rule_for("THREADS").fits("a" * 500) and not rule_for("THREADS").fits("😷" * 251)
    assert rule_for("FACEBOOK").fits("a" * 63206) and not rule_for("FACEBOOK").fits("a" * 63207)


def test_instagram_takes_at_most_30_hashtags_and_2200_characters() -> None:
    instagram = rule_for("INSTAGRAM")
    tags = " ".join(f"#tag{i}" for i in range(30))
    assert instagram.fits("Caption " + tags)
    assert "31 hashtags" in instagram.problems("Caption " + tags + " #one_more")[0]
    # A URL's fragment is not a hashtag.
    assert hashtags("https://example.com/#top #real") == ["#real"]
    assert not instagram.fits("a" * 2201)


def test_truncation_keeps_graphemes_and_entities_whole() -> None:
    x = rule_for("TWITTER")
    text = "Read " + "word " * 60 + "https://example.com/a/very/long/path #Spring @hopcast"
    cut = truncate(text, x)
    assert x.fits(cut) and cut.endswith(ELLIPSIS)
    families = "👨‍👩‍👧‍👦" * 200
    cut = truncate(families, x)
    assert cut == "👨‍👩‍👧‍👦" * 139 + ELLIPSIS
    # A URL that does not fit is dropped whole, never cut.
    text = "a" * 270 + " https://example.com/path"
    assert truncate(text, x) == "a" * 270 + ELLIPSIS
    assert truncate("short", x) == "short"
    # The suffix stays whole.
    cut = truncate("word " * 100, x, suffix="\n\n#Spring")
    assert cut.endswith(ELLIPSIS) and x.fits(cut + "\n\n#Spring")
