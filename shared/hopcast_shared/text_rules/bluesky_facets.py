"""Bluesky rich text: the links, mentions and hashtags of a post's text as AT Protocol facets
(app.bsky.richtext.facet), with UTF-8 byte offsets, detected exactly as the official client
library does it (`detectFacets` of @atproto/api 0.20.44, MIT/Apache-2.0, whose patterns are
transcribed here; shared/tests/data/bluesky-facets holds its answers for a generated corpus).

Bluesky links nothing by itself: text without facets shows as plain, unclickable text. A
mention's facet names a DID, so a detected mention carries its handle until it is resolved
(com.atproto.identity.resolveHandle); `record_facets` drops a mention that was not resolved,
which then stays plain text.

The JavaScript patterns are kept to their JavaScript meaning: `\\s` is JavaScript's white space
(not Python's), `[a-z]` under the `i` flag is ASCII only, `\\b` and `\\d` are ASCII, and offsets
count code points here where JavaScript counts UTF-16 units (the same places in the text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import regex

from hopcast_shared.text_rules.bluesky_tlds import BLUESKY_TLDS
from hopcast_shared.text_rules.graphemes import grapheme_length

FacetKind = Literal["link", "mention", "tag"]

# JavaScript's \s (and what String.trim removes): WhiteSpace and LineTerminator (ECMA-262),
# not Python's str.isspace(), which has U+001C-U+001F and U+0085 and lacks U+FEFF.
_WS_CHARS = "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
_WS_CHARS += "\u2028\u2029\u202f\u205f\u3000\ufeff"
_WS = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# What a hashtag may not contain besides white space: soft hyphen, word joiner, zero-width
# characters and the keycap's enclosing mark.
_TAG_BREAK = r"\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"

# MENTION_REGEX = /(^|\s|\()(@)([a-zA-Z0-9.-]+)(\b)/g
_MENTION = re.compile(rf"(?:^|[{_WS}]|\()@([a-zA-Z0-9.-]+)\b", re.ASCII)
# URL_REGEX = /(^|\s|\()((https?:\/\/[\S]+)|((?<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[\S]*))/gim
# (`m` changes nothing here: a line terminator is white space, which the group before takes.)
_URL = re.compile(
    rf"(?:^|[{_WS}]|\()"
    rf"((?:[hH][tT][tT][pP][sS]?://[^{_WS}]+)|(?P<domain>[a-zA-Z][a-zA-Z0-9]*(?:\.[a-zA-Z0-9]+)+)[^{_WS}]*)"
)
# TAG_REGEX = /(^|\s)[#＃]((?!\ufe0f)[^\s…]*[^\d\s\p{P}…]+[^\s…]*)?/gu  # noqa: RUF003
_TAG = regex.compile(
    rf"(^|[{_WS}])[#＃]((?!\ufe0f)[^{_WS}{_TAG_BREAK}]*[^0-9{_WS}\p{{P}}{_TAG_BREAK}]+[^{_WS}{_TAG_BREAK}]*)?"  # noqa: RUF001 - the full-width sign is one
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+\Z")
# CASHTAG_REGEX = /(^|\s|\()\$([A-Za-z][A-Za-z0-9]{0,4})(?=\s|$|[.,;:!?)"'\u2019])/gu
_CASHTAG = re.compile(rf"(^|[{_WS}]|\()\$([A-Za-z][A-Za-z0-9]{{0,4}})(?=[{_WS}]|\Z|[.,;:!?)\"'\u2019])")
_MAX_TAG_GRAPHEMES = 64


@dataclass(frozen=True)
class Facet:
    """One facet: bytes [byte_start, byte_end) of the text's UTF-8, and what they are: a link
    (`value` the URI), a mention (`value` the handle, to resolve to a DID) or a tag (`value`
    without its `#`; a cashtag keeps its `$`)."""

    byte_start: int
    byte_end: int
    kind: FacetKind
    value: str


def _is_valid_domain(name: str) -> bool:
    # detection.js isValidDomain: the name ends with "." and a known top-level domain.
    last_dot = name.rfind(".")
    while last_dot > 0:
        if name[last_dot + 1 :] in BLUESKY_TLDS:
            return True
        last_dot = name.rfind(".", 0, last_dot)
    return False


def _utf16_length(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def detect_facets(text: str) -> list[Facet]:
    """The facets of `text` in the order detectFacets gives them (by byte_start, mentions
    before links before tags where two start together)."""
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + len(char.encode("utf-8", "surrogatepass")))
    found: list[Facet] = []
    for match in _MENTION.finditer(text):
        handle = match.group(1)
        if not _is_valid_domain(handle) and not handle.endswith(".test"):
            continue  # probably not a handle
        start = match.start(1) - 1
        found.append(Facet(offsets[start], offsets[match.end(1)], "mention", handle))
    for match in _URL.finditer(text):
        uri = match.group(1)
        if not uri.startswith("http"):
            domain = match.group("domain")
            if not domain or not _is_valid_domain(domain):
                continue
            uri = f"https://{uri}"
        start, end = match.start(1), match.end(1)
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        found.append(Facet(offsets[start], offsets[end], "link", uri))
    for tag_match in _TAG.finditer(text):
        tag = tag_match.group(2)
        if not tag:
            continue
        tag = _TRAILING_PUNCTUATION.sub("", tag.strip(_WS_CHARS))
        if not tag or (_utf16_length(tag) > _MAX_TAG_GRAPHEMES and grapheme_length(tag) > _MAX_TAG_GRAPHEMES):
            continue
        start = tag_match.start() + len(tag_match.group(1))
        found.append(Facet(offsets[start], offsets[start + 1 + len(tag)], "tag", tag))
    for match in _CASHTAG.finditer(text):
        ticker = match.group(2).upper()
        start = match.start() + len(match.group(1))
        found.append(Facet(offsets[start], offsets[start + 1 + len(ticker)], "tag", "$" + ticker))
    return sorted(found, key=lambda facet: facet.byte_start)


def mention_handles(facets: list[Facet]) -> list[str]:
    """The handles the facets mention, each once, in order."""
    return list(dict.fromkeys(f.value for f in facets if f.kind == "mention"))


def record_facets(facets: list[Facet], dids: Mapping[str, str]) -> list[dict[str, object]]:
    """The facets as an app.bsky.feed.post record holds them; a mention whose handle has no
    DID in `dids` is left out (it stays plain text)."""
    out: list[dict[str, object]] = []
    for facet in facets:
        feature: dict[str, object]
        if facet.kind == "mention":
            did = dids.get(facet.value)
            if not did:
                continue
            feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
        elif facet.kind == "link":
            feature = {"$type": "app.bsky.richtext.facet#link", "uri": facet.value}
        else:
            feature = {"$type": "app.bsky.richtext.facet#tag", "tag": facet.value}
        out.append({"index": {"byteStart": facet.byte_start, "byteEnd": facet.byte_end}, "features": [feature]})
    return out


def first_link(facets: list[Facet]) -> str | None:
    """The URI of the first link, the one a link card shows."""
    return next((f.value for f in facets if f.kind == "link"), None)
