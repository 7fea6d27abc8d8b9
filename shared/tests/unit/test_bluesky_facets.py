"""Bluesky facets against what nobody here wrote: the official @atproto/api's detectFacets run
on a generated corpus (shared/tests/data/bluesky-facets), plus properties of the byte offsets
for any text: each facet's bytes are exactly its text in UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hopcast_shared.text_rules.bluesky_facets import (
    Facet,
    detect_facets,
    first_link,
    mention_handles,
    record_facets,
)

DATA = Path(__file__).parent.parent / "data" / "bluesky-facets"


def _as_oracle(facets: list[Facet]) -> list[list[object]]:
    return [[f.byte_start, f.byte_end, f.kind, f.value] for f in facets]


def test_facets_agree_with_the_official_atproto_api_on_generated_texts() -> None:
    oracle = json.loads((DATA / "differential.json").read_text(encoding="utf-8"))
    assert oracle["generator"] == "@atproto/api 0.20.44" and len(oracle["cases"]) == 2000
    disagreements = [
        (case["text"], _as_oracle(detect_facets(case["text"])), case["facets"])
        for case in oracle["cases"]
        if _as_oracle(detect_facets(case["text"])) != case["facets"]
    ]
    assert disagreements == []
    # The corpus reaches every kind of facet, often.
    kinds = [facet[2] for case in oracle["cases"] for facet in case["facets"]]
    assert min(kinds.count("link"), kinds.count("mention"), kinds.count("tag")) > 500
    assert sum(1 for case in oracle["cases"] if not case["facets"]) > 50


def test_a_post_with_a_link_a_hashtag_and_a_mention() -> None:
    text = "Spring menu 🌸 at https://example.com/menu, #Spring2027 with @alice.test."
    facets = detect_facets(text)
    data = text.encode()
    assert [(data[f.byte_start : f.byte_end].decode(), f.kind, f.value) for f in facets] == [
        ("https://example.com/menu", "link", "https://example.com/menu"),
        ("#Spring2027", "tag", "Spring2027"),
        ("@alice.test", "mention", "alice.test"),
    ]
    # The emoji is four bytes of UTF-8 and one code point: byte offsets, not code points.
    assert facets[0].byte_start == text.index("https") + 3


def test_links_without_a_protocol_need_a_known_top_level_domain() -> None:
    assert [f.value for f in detect_facets("see hopcast.app/pricing or foo.invalidtld")] == [
        "https://hopcast.app/pricing"
    ]
    # Trailing punctuation and an unbalanced closing bracket are not part of a link.
    assert [f.value for f in detect_facets("(example.com/x) and https://example.com.")] == [
        "https://example.com/x",
        "https://example.com",
    ]


def test_unresolved_mentions_stay_plain_text() -> None:
    facets = detect_facets("hi @alice.test and @bob.test #tag")
    assert mention_handles(facets) == ["alice.test", "bob.test"]
    record = record_facets(facets, {"alice.test": "did:plc:alice"})
    assert [f["features"] for f in record] == [
        [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}],
        [{"$type": "app.bsky.richtext.facet#tag", "tag": "tag"}],
    ]
    assert record[0]["index"] == {"byteStart": 3, "byteEnd": 14}


def test_the_card_link_is_the_first_link() -> None:
    assert first_link(detect_facets("#a b.com https://c.org")) == "https://b.com"
    assert first_link(detect_facets("no link here #tag")) is None


PIECES = [
    "spring",
    "naïve",
    "e\u0301",
    "故人西辞",
    "😷",
    "👨\u200d👩\u200d👧\u200d👦",
    "🇫🇷",
    "https://example.com/é?q=1",
    "hopcast.app/pricing",
    "(example.org)",
    "@alice.test",
    "@bob.com",
    "#Spring2027",
    "#日本語",
    "＃全角",  # noqa: RUF001 - the full-width sign is the point
    "#tag!",
    "$TSLA",
    " ",
    "\u3000",
    "\n",
    "\u00a0",
    ".",
    ",",
    "!",
]
texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(max_size=200),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=30).map(" ".join),
)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_byte_offsets_slice_out_exactly_the_facets_text(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    previous_start = 0
    for facet in detect_facets(text):
        assert 0 <= previous_start <= facet.byte_start < facet.byte_end <= len(data)
        previous_start = facet.byte_start
        # Whole characters: the slice decodes, and is where the same text sits in the string.
        piece = data[facet.byte_start : facet.byte_end].decode("utf-8", "surrogatepass")
        prefix = data[: facet.byte_start].decode("utf-8", "surrogatepass")
        assert text[len(prefix) : len(prefix) + len(piece)] == piece
        if facet.kind == "mention":
            assert piece == "@" + facet.value
        elif facet.kind == "tag":
            if facet.value.startswith("$"):
                assert piece.upper() == facet.value  # a cashtag, its ticker in capitals
            else:
                assert piece[0] in "#＃" and piece[1:] == facet.value  # noqa: RUF001
        else:
            assert facet.value in (piece, "https://" + piece)
