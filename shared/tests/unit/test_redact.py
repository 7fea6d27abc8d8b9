"""Secrets never reach logs or dead letters in plaintext; ciphertexts stay for replays."""

from __future__ import annotations

import json
import re
import string
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hopcast_shared.crypto import Keyring, owner_aad
from hopcast_shared.redact import (
    _SENSITIVE_NAME,
    _TEXT_PATTERNS,
    REDACTED,
    _fold,
    _mask,
    is_secret_key,
    redact_secrets,
    redact_text,
)

SECRET = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"  # noqa: S105 (made up)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFiYyJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
EXPIRES_AT = "2027-01-01T00:00:00Z"
SEALED = Keyring.generate().encrypt(SECRET, associated_data=owner_aad("social_account", "alice"))


def test_nested_secret_values_are_replaced_and_the_rest_kept() -> None:
    document = {
        "type": "SocialAccountConnected",
        "data": {
            "handle": "@brand",
            "access_token": SECRET,
            "token_expires_at": EXPIRES_AT,
            "nested": [{"password": SECRET, "name": "x"}, [{"client_secret": SECRET}]],
            "Authorization": f"Bearer {SECRET}",
            "refresh_token": None,
        },
    }
    clean = redact_secrets(document)
    assert SECRET not in json.dumps(clean)
    assert clean["type"] == "SocialAccountConnected"
    assert clean["data"]["handle"] == "@brand"
    assert clean["data"]["token_expires_at"] == EXPIRES_AT  # a date, not a secret
    assert clean["data"]["access_token"] == REDACTED
    assert clean["data"]["nested"] == [{"password": REDACTED, "name": "x"}, [{"client_secret": REDACTED}]]
    assert clean["data"]["Authorization"] == REDACTED
    assert clean["data"]["refresh_token"] is None  # "no refresh token" is worth keeping
    assert list(clean["data"]) == list(document["data"])  # same keys, same order


def test_the_input_is_left_untouched() -> None:
    document: dict[str, Any] = {"data": {"access_token": SECRET, "items": [{"token": SECRET}]}}
    clean = redact_secrets(document)
    assert document == {"data": {"access_token": SECRET, "items": [{"token": SECRET}]}}
    clean["data"]["items"].append("x")
    assert len(document["data"]["items"]) == 1  # a copy all the way down


def test_a_ciphertext_is_kept_so_a_replay_still_works() -> None:
    document = {"data": {"access_token": SEALED, "refresh_token": SEALED, "note": f"token={SEALED}"}}
    assert redact_secrets(document) == document


def test_non_string_secrets_are_replaced_whole() -> None:
    clean = redact_secrets({"api_key": 123456, "credentials": {"user": "u", "pass": SECRET}, "secret": [SECRET]})
    assert clean == {"api_key": REDACTED, "credentials": REDACTED, "secret": REDACTED}


@pytest.mark.parametrize(
    "key",
    ["access_token", "refresh_token", "token", "Token", "id_token", "accessToken", "accessJwt", "refreshJwt",
     "password", "DB_PASSWORD", "secret", "client_secret", "api_key", "X-Api-Key", "apiKey", "Authorization",
     "private_key", "Set-Cookie", "X-Auth-Token"],
)  # fmt: skip
def test_secret_keys_are_recognised_in_any_case_or_spelling(key: str) -> None:
    assert is_secret_key(key)
    assert redact_secrets({key: SECRET}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key", ["token_expires_at", "max_tokens", "tokens_used", "handle", "external_account_id", "author", "id"]
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert redact_secrets({key: "value-1234"}) == {key: "value-1234"}


KEY_PIECES = st.sampled_from(
    ["token", "Jwt", "pass", "word", "_", "-", "api", "Key", "secret", "x", "İ", "K", " ", "cookie", "Authorization",
     "credential", "private", "phrase"]
)  # fmt: skip


@given(st.lists(KEY_PIECES | st.text(max_size=3), max_size=40).map("".join))
def test_a_key_is_judged_alike_whatever_its_length_and_however_often(key: str) -> None:
    """The rule as written out (not as `redact` runs it: one regex, the short names' verdicts
    remembered), on names short and long, each asked twice."""

    def rule(name: str) -> bool:
        normalized = re.sub(r"[^a-z0-9]", "", name.lower())
        parts = ("password", "passwd", "passphrase", "secret", "apikey", "authorization", "privatekey", "credential")
        return normalized.endswith(("token", "jwt")) or any(p in normalized for p in (*parts, "cookie"))

    for name in (key, "x" * 70 + key):
        assert is_secret_key(name) == rule(name)
        assert is_secret_key(name) == rule(name)


def test_strings_under_ordinary_keys_are_masked_as_text() -> None:
    clean = redact_secrets({"error": f"platform said: Authorization: Bearer {SECRET}", "tuple": ("a", {"token": 1})})
    assert clean == {"error": f"platform said: Authorization: Bearer {REDACTED}", "tuple": ["a", {"token": REDACTED}]}


def test_a_deeply_nested_event_does_not_break_the_dead_letter_path() -> None:
    depth = 900  # within what json.loads accepts, beyond what recursion would survive
    document = json.loads(
        '{"access_token": "' + SECRET + '", "x": ' + "[" * depth + '{"password": "p4ss"}' + "]" * depth + "}"
    )
    clean = redact_secrets(document)
    assert clean["access_token"] == REDACTED
    inner = clean["x"]
    for _ in range(depth - 1):
        inner = inner[0]
    assert inner == [{"password": REDACTED}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {SECRET}", f"Authorization: Bearer {REDACTED}"),
        (f"authorization: Basic {SECRET}==", f"authorization: Basic {REDACTED}"),
        (f"'Authorization': 'token {SECRET}'", f"'Authorization': 'token {REDACTED}'"),
        (f"got bearer {SECRET} back", f"got bearer {REDACTED} back"),
        (f"GET /cb?access_token={SECRET}&x=1", f"GET /cb?access_token={REDACTED}&x=1"),
        (f'{{"refresh_token": "{SECRET}", "n": 1}}', f'{{"refresh_token": "{REDACTED}", "n": 1}}'),
        (f'{{\\"access_token\\": \\"{SECRET}\\"}}', f'{{\\"access_token\\": \\"{REDACTED}\\"}}'),
        (f"{{'password': '{SECRET}'}}", f"{{'password': '{REDACTED}'}}"),
        (f"accessJwt={JWT}", f"accessJwt={REDACTED}"),
        (f"X-Api-Key: {SECRET}", f"X-Api-Key: {REDACTED}"),
        (f"client_secret={SECRET}", f"client_secret={REDACTED}"),
        (f"session {JWT} expired", f"session {REDACTED} expired"),
        (f"connect postgresql://hopcast:{SECRET}@db:5432/x", f"connect postgresql://hopcast:{REDACTED}@db:5432/x"),
    ],
)
def test_free_text_masks_credentials(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # masking again changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "token_expires_at=2027-01-01T00:00:00Z",
        "used 12 tokens: 5 left",
        '{"refresh_token": null}',
        "postgresql://127.0.0.1:55432/publisher",
        f"access_token={SEALED}",
        f"Authorization: Bearer {SEALED}",
        "PostPublishFailed: PLATFORM_REJECTED (429 Too Many Requests)",
    ],
)
def test_free_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


_KEYS = st.sampled_from(["access_token", "refreshJwt", "password", "api_key", "note", "items", "handle"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=30,
)


@given(document=_JSON, path=st.lists(_KEYS, min_size=1, max_size=4))
def test_a_secret_planted_under_a_secret_key_never_survives(document: Any, path: list[str]) -> None:
    planted: dict[str, Any] = {}
    node = planted
    for key in path[:-1]:
        node[key] = {}
        node = node[key]
    node[path[-1] if is_secret_key(path[-1]) else "access_token"] = SECRET
    clean = redact_secrets({"document": document, "planted": planted})
    assert SECRET not in json.dumps(clean)
    assert clean["document"] == redact_secrets(document)  # the rest is treated the same wherever it sits


def _every_pattern(text: str) -> str:
    """redact_text without its shortcut: every pattern run over the whole text."""
    for pattern, _, _ in _TEXT_PATTERNS:
        text = pattern.sub(_mask, text)
    return text


def test_every_letter_the_patterns_match_without_case_folds_to_that_letter() -> None:
    """The shortcut seeks each pattern's words in `_fold(text)`: it may skip a text only if no
    character that a pattern's (?i) takes for an ASCII letter folds to anything else."""
    ascii_letter = re.compile("(?i)[a-z]")
    twins = 0
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or not ascii_letter.fullmatch(char):
            continue
        twins += 1
        [letter] = [x for x in string.ascii_lowercase if re.fullmatch(f"(?i){x}", char)]
        assert _fold(char) == letter, (hex(code), letter)
    assert twins > 52  # beyond A-Z and a-z: the Kelvin sign and the long s among them


_PIECES = [*"abcdeijkopsrtwyzABEIJKORST :=@/._-\"'\\\n", "\u0130", "\u0131", "\u212a", "\u017f", "\u00e9"]
_WORDS = ["token", "bearer ", "Authorization", "passwd", "passphrase", "api-key", "cookie", "eyJ", "://", "jwt"]
_NEAR_SECRETS = st.lists(st.sampled_from(_PIECES + _WORDS), max_size=40).map("".join)


@given(text=_NEAR_SECRETS | st.text(max_size=80))
def test_the_shortcut_masks_what_every_pattern_would(text: str) -> None:
    assert redact_text(text) == _every_pattern(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"\u212aey-token={SECRET}", f"\u212aey-token={REDACTED}"),  # the Kelvin sign: "Key"
        (f"AUTHOR\u0130ZAT\u0130ON: {SECRET}", f"AUTHOR\u0130ZAT\u0130ON: {REDACTED}"),
        (f"pa\u017f\u017fword={SECRET}", f"pa\u017f\u017fword={REDACTED}"),  # the long s
    ],
)
def test_letters_that_only_match_without_case_still_mask(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "name", ["token", "jwt", "passwd", "password", "passphrase", "secret", "api_key", "apikey", "API-KEY", "cookie"]
)
def test_every_sensitive_name_masks_its_value(name: str) -> None:
    assert redact_text(f"{name}={SECRET}") == f"{name}={REDACTED}" == _every_pattern(f"{name}={SECRET}")


@given(name=st.from_regex(_SENSITIVE_NAME, fullmatch=True), upper=st.booleans())
def test_any_name_the_pattern_takes_for_sensitive_masks_its_value(name: str, upper: bool) -> None:
    """Built from the pattern itself: a name added to it without its word fails here."""
    text = f"{name.upper() if upper else name}: {SECRET}"
    assert redact_text(text) == _every_pattern(text) != text
