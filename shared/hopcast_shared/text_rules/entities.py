"""The entities of a post's text that platforms count or link specially: URLs (as twitter-text
extracts them: with or without a protocol, a known top-level domain, twitter-text 3.1.0's
patterns and rules, Apache-2.0), mentions (`@user`, `@user@domain`) and hashtags. A text is
never cut inside one of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hopcast_shared.text_rules.tlds import COUNTRY_TLDS, GENERIC_TLDS

_SPACES = r"\x09-\x0D\x20\x85\xA0\u1680\u180E\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
_INVALID = r"\uFFFE\uFEFF\uFFFF"
_DIRECTIONAL = r"\u202A-\u202E\u061C\u200E\u200F\u2066\u2067\u2068\u2069"
_PUNCT = r"!'#%&'()*+,\\\-./:;<=>?@\[\]\^_{|}~$"
_LATIN_ACCENTS = (
    r"\xC0-\xD6\xD8-\xF6\xF8-\xFF\u0100-\u024F\u0253\u0254\u0256\u0257\u0259\u025B\u0263\u0268"
    r"\u026F\u0272\u0289\u028B\u02BB\u0300-\u036F\u1E00-\u1EFF"
)
_CYRILLIC = r"\u0400-\u04FF"
_TLD_END = r"(?=[^0-9a-zA-Z@+-]|$)"
_GTLD = "(?:(?:" + "|".join(GENERIC_TLDS) + ")" + _TLD_END + ")"
_CCTLD = "(?:(?:" + "|".join(COUNTRY_TLDS) + ")" + _TLD_END + ")"
_PUNYCODE = r"(?:xn--[\-0-9a-z]+)"

_PRECEDING = rf"(?:[^A-Za-z0-9@＠$#＃{_INVALID}]|[{_DIRECTIONAL}]|^)"  # noqa: RUF001 - the full-width signs count too
_DOMAIN_CHAR = rf"[^/{_PUNCT}{_SPACES}{_INVALID}{_DIRECTIONAL}]"
_SUBDOMAIN = rf"(?:(?:{_DOMAIN_CHAR}(?:[_-]|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)"
_DOMAIN_NAME = rf"(?:(?:{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)"
_DOMAIN = rf"(?:{_SUBDOMAIN}*{_DOMAIN_NAME}(?:{_GTLD}|{_CCTLD}|{_PUNYCODE}))"
_PATH_CHAR = rf"[a-z{_CYRILLIC}0-9!*';:=+,.$/%#\[\]\-\u2013_~@|&{_LATIN_ACCENTS}]"
_PARENS = rf"\((?:{_PATH_CHAR}+|(?:{_PATH_CHAR}*\({_PATH_CHAR}+\){_PATH_CHAR}*))\)"
_PATH_END = rf"[+\-a-z{_CYRILLIC}0-9=_#/{_LATIN_ACCENTS}]|(?:{_PARENS})"
_PATH = rf"(?:(?:{_PATH_CHAR}*(?:{_PARENS}{_PATH_CHAR}*)*{_PATH_END})|(?:@{_PATH_CHAR}+/))"
_QUERY_CHAR = r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]"
_QUERY_END = r"[a-z0-9\-_&=#/]"

_EXTRACT_URL = re.compile(
    rf"({_PRECEDING})"  # 1: the character before
    r"("  # 2: the URL
    r"(https?://)?"  # 3: protocol
    rf"({_DOMAIN})"  # 4: domain
    r"(?::([0-9]+))?"  # 5: port
    rf"(/{_PATH}*)?"  # 6: path
    rf"(\?{_QUERY_CHAR}*{_QUERY_END})?"  # 7: query
    r")",
    re.IGNORECASE,
)
_ASCII_DOMAIN = re.compile(rf"(?:(?:[\-a-z0-9{_LATIN_ACCENTS}]+)\.)+(?:{_GTLD}|{_CCTLD}|{_PUNYCODE})", re.IGNORECASE)
_TCO_URL = re.compile(rf"^https?://t\.co/([a-z0-9]+)(?:\?{_QUERY_CHAR}*{_QUERY_END})?", re.IGNORECASE)
_NO_PROTOCOL_AFTER = re.compile(r"[-_./]$")
_MAX_URL_LENGTH = 4096
_MAX_TCO_SLUG_LENGTH = 40
_MAX_LABEL_LENGTH = 63

# A mention: `@user` or a remote `@user@domain` (Mastodon), not inside a word or an address.
MENTION = re.compile(r"(?<![\w@＠!#$%&*/])[@＠](\w{1,30})(?:@([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?))?", re.IGNORECASE)  # noqa: RUF001 - the full-width signs count too
# A hashtag: `#` then word characters with at least one that is not a digit.
HASHTAG = re.compile(r"(?<![\w&#＃/])[#＃](?=\w*[^\W\d])\w+")  # noqa: RUF001 - the full-width signs count too


@dataclass(frozen=True)
class Url:
    start: int
    end: int
    has_protocol: bool

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def _punycode_length(domain: str) -> int | None:
    """The length of the domain once punycode-encoded (twitter-text's `idna.toAscii`), or None
    when a label is empty or longer than DNS allows."""
    if domain[:4].lower() == "xn--" and not _ASCII_DOMAIN.search(domain):
        return None
    length = len(domain.split(".")) - 1
    for label in domain.split("."):
        try:
            encoded = label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        except UnicodeError:
            return None
        if not 1 <= len(encoded) <= _MAX_LABEL_LENGTH:
            return None
        length += len(encoded)
    return length


def extract_urls(text: str, *, without_protocol: bool = True) -> list[Url]:
    """The URLs of `text` as twitter-text's `extractUrlsWithIndices` finds them (offsets in code
    points). `without_protocol=False` keeps only those written with http(s)://."""
    if not text or ("." not in text if without_protocol else ":" not in text):
        return []
    urls: list[Url] = []
    for m in _EXTRACT_URL.finditer(text):
        before, url, protocol, domain, path = m.group(1), m.group(2), m.group(3), m.group(4), m.group(6)
        start, end = m.start(2), m.end(2)
        encoded = _punycode_length(domain)
        if encoded is None or len(protocol or "https://") + len(url) + encoded - len(domain) > _MAX_URL_LENGTH:
            continue
        if not protocol:
            if not without_protocol or _NO_PROTOCOL_AFTER.search(before):
                continue
            last: Url | None = None
            ascii_end = 0
            for ascii_match in _ASCII_DOMAIN.finditer(domain):
                ascii_start = domain.index(ascii_match.group(), ascii_end)
                ascii_end = ascii_start + len(ascii_match.group())
                last = Url(start + ascii_start, start + ascii_end, False)
                urls.append(last)
            if last is None:
                continue
            if path:
                urls[-1] = Url(last.start, end, False)
        else:
            tco = _TCO_URL.match(url)
            if tco is not None:
                if len(tco.group(1)) > _MAX_TCO_SLUG_LENGTH:
                    continue
                end = start + len(tco.group())
            urls.append(Url(start, end, True))
    return urls


def entity_spans(text: str, *, urls: list[Url] | None = None) -> list[tuple[int, int]]:
    """The (start, end) of every URL, mention and hashtag of `text`: where it must not be cut."""
    found = urls if urls is not None else extract_urls(text)
    spans = [u.span for u in found]
    spans += [m.span() for m in MENTION.finditer(text)]
    spans += [m.span() for m in HASHTAG.finditer(text)]
    return sorted(spans)


def hashtags(text: str) -> list[str]:
    """The hashtags of `text` outside its URLs (a URL's `#fragment` is not a hashtag)."""
    inside = [u.span for u in extract_urls(text)]
    return [m.group() for m in HASHTAG.finditer(text) if not any(s <= m.start() < e for s, e in inside)]
