# ruff: noqa: RUF001 - look-alike characters are what the texts are made of
"""Regenerate differential.json: texts built at random from pieces that stress Bluesky's
rich-text detection (links with and without a protocol, trailing punctuation and brackets,
handles with known and unknown top-level domains, hashtags next to emoji, digits and
punctuation, the full-width sign, cashtags, JavaScript's and Python's differing white space,
multi-byte UTF-8) and what the official @atproto/api (npm package 0.20.44, run by oracle.mjs
on Node 22) detects in each. Needs the platform suite's Node and node_modules (`make
test-platforms` installs them into the state folder, .state/tools by default): oracle.mjs
runs from that folder, where it finds @atproto/api. The tests read only the JSON.

    python make_corpus.py > texts.json
    cp oracle.mjs .state/tools/atproto-pds-*/ && cd .state/tools/atproto-pds-*/ && \
        ../node-v22.23.5/bin/node oracle.mjs < texts.json > differential.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PIECES = [
    "hello",
    "Spring menu",
    "a",
    "naïve",
    "故人西辞黄鹤楼",
    "한국어",
    "пример",
    "مرحبا",
    "😷",
    "👨\u200d👩\u200d👧\u200d👦",
    "🇫🇷",
    "👍🏻",
    "e\u0301",
    "https://example.com",
    "https://example.com/path/to/page?q=1&x=y#frag",
    "http://localhost:8080/x",
    "HTTPS://EXAMPLE.COM/UP",
    "Https://example.com",
    "example.com",
    "Example.COM",
    "www.example.org/about",
    "sub.domain.co.uk/x",
    "hopcast.app/pricing",
    "bsky.app/profile/alice.test",
    "foo.bar",
    "foo.invalidtld",
    "httpfoo.com/x",
    "a.b.c",
    "example.com.",
    "example.com,",
    "example.com!",
    "example.com?",
    "(https://example.com)",
    "(example.com/x)",
    "https://en.wikipedia.org/wiki/Primer_(film)",
    "https://example.com/é/ü",
    "xn--80ak6aa92e.com",
    "user@example.com",
    "@alice.test",
    "@bob.example",
    "@carol.bsky.social",
    "@dave.com",
    "@Eve.Test",
    "@frank",
    "@frank.invalidtld",
    "@-dash-.com",
    "@a.b",
    "@alice.test.",
    "@@alice.test",
    "(@alice.test)",
    "#Hopcast",
    "#spring2027",
    "#123",
    "#1a",
    "#tag!",
    "#tag...",
    "#tag's",
    "#日本語",
    "＃全角",
    "#️⃣",
    "#\ufe0ftag",
    "#café",
    "#tag😷",
    "#😷",
    "#a_b",
    "#a-b",
    "#" + "x" * 70,
    "#" + "é" * 40,
    "#",
    "##double",
    "a#b",
    "$TSLA",
    "$tsla.",
    "$BRK.B",
    "$TOOLONG",
    "($AAPL)",
    "$1abc",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "\u00a0",
    "\u3000",
    "\u2028",
    "\ufeff",
    "\u0085",
    "\u001c",
    "\u200b",
    "\u200d",
    "\u00ad",
    ".",
    ",",
    "!",
    "?",
    ":",
    ";",
    "(",
    ")",
    "'",
    '"',
    "\u2019",
    "…",
    "—",
    "/",
    "-",
    "_",
]


def main() -> None:
    # The generator of the twitter-text corpus, with Bluesky's pieces.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "twitter-text"))
    from make_differential import corpus

    json.dump(corpus(PIECES, [1, 2, 3, 5, 8, 13, 30], 2000), sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
