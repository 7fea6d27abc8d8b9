# ruff: noqa: RUF001 - look-alike characters are what the texts are made of
"""Regenerate differential.json: texts built at random from pieces that stress X's counting
(URLs with and without a protocol, emoji sequences, CJK, decomposed accents, mentions,
hashtags, odd spaces) and what the official twitter-text (npm package 3.1.0, run by
oracle.js on Node) says of each. Needs Node and `npm install twitter-text@3.1.0` beside
oracle.js; the tests read only the JSON.

    python make_differential.py > texts.json && node oracle.js < texts.json > differential.json
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence

PIECES = [
    "hello",
    "world",
    "Spring menu",
    "a",
    "é",
    "e\u0301",
    "A\u030a",
    "naïve",
    "Ünïcödé",
    "ß",
    "故人西辞黄鹤楼",
    "のの",
    "한국어",
    "中文",
    "пример",
    "مرحبا",
    "שלום",
    "हिन्दी",
    "ไทย",
    "😷",
    "🐱",
    "☺",
    "☺\ufe0f",
    "❤",
    "❤\ufe0f",
    "©",
    "©\ufe0f",
    "®",
    "™",
    "‼",
    "1⃣",
    "1\ufe0f\u20e3",
    "#\ufe0f\u20e3",
    "👨\u200d👩\u200d👧\u200d👦",
    "🙋🏽",
    "👨\u200d🎤",
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "🇫🇷",
    "🇯🇵🇺🇸",
    "🧕🏾",
    "🤪",
    "👍🏻",
    "✨",
    "⭐",
    "✅",
    "➡\ufe0f",
    "↔",
    "http://test.co",
    "https://example.com",
    "https://example.com/path/to/page?q=1&x=y#frag",
    "example.com",
    "www.example.org/about",
    "sub.domain.co.uk/x",
    "t.co/abc",
    "https://t.co/abcdef123",
    "https://t.co/" + "a" * 45,
    "http://example.com/foo_(bar)",
    "https://en.wikipedia.org/wiki/Primer_(film)",
    "foo.bar",
    "hopcast.app/pricing",
    "café.fr",
    "http://foobar.پاکستان/",
    "xn--80ak6aa92e.com",
    "bit.ly/x",
    "https://example.com.",
    "example.com,",
    "(https://example.com)",
    "user@example.com",
    "http://a.b",
    "http://localhost:8080/x",
    "https://example.com:8443/x",
    "ftp://example.com",
    "@hopcast",
    "@user@mastodon.social",
    "#Hopcast",
    "#spring2027",
    "#123",
    "$TSLA",
    "&amp;",
    " ",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\u2000",
    "\u200b",
    "\u200d",
    "\u3000",
    "\u202a",
    "\u2066",
    ".",
    ",",
    "!",
    "?",
    "—",
    "–",
    "…",
    "'",
    '"',
    "(",
    ")",
    "/",
    "-",
    "_",
    ":",
    ";",
]


def corpus(pieces: Sequence[str], lengths: Sequence[int], count: int, seed: int = 17) -> list[str]:
    """`count` texts, each of a number of pieces drawn from `lengths`, with a space after a piece
    six times in ten (shared with the Bluesky facet corpus, ../bluesky-facets/make_corpus.py)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        out = []
        for _ in range(rng.choice(lengths)):
            out.append(rng.choice(pieces))
            if rng.random() < 0.6:
                out.append(" ")
        texts.append("".join(out))
    return texts


def main() -> None:
    json.dump(corpus(PIECES, [1, 2, 3, 5, 8, 13, 30, 60, 120], 1000), sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
