"""Threads' and Instagram's own counting rules at their edges (Threads: 500 characters, an emoji
counted by its UTF-8 bytes; Instagram: 2,200 characters, 30 hashtags, 20 @ tags)."""

from __future__ import annotations

from hopcast_shared.text_rules import rule_for, truncate
from hopcast_shared.text_rules.threads import threads_length


def test_threads_takes_500_characters_and_refuses_501() -> None:
    threads = rule_for("THREADS")
    assert threads.fits("a" * 500)
    assert threads.problems("a" * 501) == ("501 characters over the limit of 500",)


def test_threads_counts_an_emoji_by_its_utf8_bytes_and_an_accent_as_one() -> None:
    assert threads_length("😷") == 4
    assert threads_length("👨\u200d👩\u200d👧") == 18  # a family: three 4-byte people and two ZWJ
    assert threads_length("cafe\u0301") == 4  # one cluster for e and its accent
    assert rule_for("THREADS").fits("a" * 496 + "😷")
    assert not rule_for("THREADS").fits("a" * 497 + "😷")


def test_a_text_truncated_for_threads_fits_its_rule() -> None:
    threads = rule_for("THREADS")
    cut = truncate("😷 " * 200, threads)
    assert cut and threads.fits(cut) and threads_length(cut) > 480


def test_instagram_takes_20_at_tags_and_refuses_21() -> None:
    instagram = rule_for("INSTAGRAM")
    tags = " ".join(f"@friend{i}" for i in range(20))
    assert instagram.fits("Thanks " + tags)
    assert instagram.problems("Thanks " + tags + " @one_more") == ("21 @ tags over the limit of 20",)
