"""Truncation by each platform's rule, for any text: the result passes the rule, is the
original cut between grapheme clusters and outside every URL, mention and hashtag (then an
ellipsis), or the original itself when it passed already."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hopcast_shared.text_rules import ELLIPSIS, RULES, rule_for, truncate
from hopcast_shared.text_rules.entities import entity_spans
from hopcast_shared.text_rules.graphemes import boundaries

PIECES = [
    "spring",
    "menu",
    "Hopcast",
    "naïve",
    "e\u0301",
    "故人西辞",
    "のの",
    "한국어",
    "пример",
    "مرحبا",
    "😷",
    "☺",
    "❤\ufe0f",
    "©",
    "1⃣",
    "👨\u200d👩\u200d👧\u200d👦",
    "🙋🏽",
    "🇫🇷",
    "🏳\ufe0f\u200d🌈",
    "https://example.com/spring-menu_(2027)?q=1",
    "hopcast.app/pricing",
    "https://t.co/abc123",
    "@hopcast",
    "@alice@mastodon.social",
    "#Spring2027",
    "#café",
    " ",
    " ",
    "\n\n",
    ",",
    ".",
    "-",
    "—",
]
# At least one piece with a letter: a text of spaces and commas alone has nothing to keep.
words = st.lists(st.sampled_from(PIECES), min_size=1, max_size=30).filter(
    lambda ws: any(ch.isalnum() for w in ws for ch in w)
)


def texts_over(limit: int) -> st.SearchStrategy[str]:
    """Texts around and over `limit`: a generated run of pieces, repeated past the limit."""
    return st.tuples(words, st.integers(min_value=0, max_value=4)).map(
        lambda parts: _repeat(" ".join(parts[0]), limit, parts[1])
    )


def _repeat(chunk: str, limit: int, extra: int) -> str:
    times = max(1, limit // max(1, len(chunk)) + extra - 2)
    return (chunk + " ") * times


# Limits big enough to need repetition; Mastodon with its default and with an instance's own.
PLATFORMS = [
    pytest.param(rule_for(name), id=name) for name in ("TWITTER", "BLUESKY", "LINKEDIN", "THREADS", "INSTAGRAM")
] + [
    pytest.param(rule_for("MASTODON"), id="MASTODON"),
    pytest.param(rule_for("MASTODON", mastodon_limit=1000), id="MASTODON-1000"),
]


def _limit(rule: object) -> int:
    return int(getattr(rule, "limit", 0) or {"TWITTER": 280, "BLUESKY": 300, "INSTAGRAM": 2200}[rule.platform])  # type: ignore[attr-defined]


def check_truncation(rule: object, text: str) -> None:
    cut = truncate(text, rule)  # type: ignore[arg-type]
    if rule.fits(text):  # type: ignore[attr-defined]
        assert cut == text
        return
    assert cut, "a text of ordinary pieces always has a cut that fits"
    assert rule.fits(cut), rule.problems(cut)  # type: ignore[attr-defined]
    assert cut.endswith(ELLIPSIS)
    head = cut[: -len(ELLIPSIS)]
    assert text.startswith(head)
    assert len(head) in set(boundaries(text)), "cut inside a grapheme cluster"
    assert not any(s < len(head) < e for s, e in entity_spans(text)), "cut inside a URL, mention or hashtag"


@pytest.mark.parametrize("rule", PLATFORMS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_truncation_passes_the_rule_and_cuts_only_between_graphemes_and_entities(
    rule: object, data: st.DataObject
) -> None:
    text = data.draw(texts_over(_limit(rule)))
    check_truncation(rule, text)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk=words)
def test_facebook_truncation_passes_its_rule(chunk: list[str]) -> None:
    text = _repeat(" ".join(chunk), 63206, 2)
    check_truncation(rule_for("FACEBOOK"), text)


@settings(max_examples=25, deadline=None)
@given(text=st.text(min_size=1, max_size=200))
def test_x_truncation_of_any_unicode_text_passes_the_rule(text: str) -> None:
    rule = rule_for("TWITTER")
    cut = truncate(text * 3, rule)
    assert cut == "" or rule.fits(cut)
    if cut and cut != text * 3:
        assert (text * 3).startswith(cut[: -len(ELLIPSIS)])


def test_every_platform_has_a_rule() -> None:
    from hopcast_shared.contract import Platform

    assert {p.value for p in Platform} == set(RULES)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.text())
def test_grapheme_length_agrees_with_the_clusters_whatever_the_text(text: str) -> None:
    from hopcast_shared.text_rules.graphemes import clusters, grapheme_length, utf16_length

    assert grapheme_length(text) == len(clusters(text))
    assert utf16_length(text) == sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
