"""Production refuses token keys anyone could guess (all-zero, repeated, counting, text, documented);
elsewhere they load with a warning. No message holds the key."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

import pytest

from hopcast_shared.crypto import Keyring, load_keyring
from hopcast_shared.key_strength import DOCUMENTED_KEYS_SHA256, weak_key_reason
from hopcast_shared.settings import CryptoSettings, SettingsError

WEAK = {
    "all zero bytes": bytes(32),
    "one byte repeated": b"\xa5" * 32,
    "a pattern of 2 bytes repeated": b"\x13\xf7" * 16,
    "a pattern of 4 bytes repeated": b"\xde\xad\xbe\xef" * 8,
    "a pattern of 16 bytes repeated": os.urandom(16) * 2,
    "a counting sequence of bytes": bytes(range(32)),
    "printable text, not random bytes": b"correct horse battery staple 32!",
}


@pytest.mark.parametrize(("reason", "key"), WEAK.items(), ids=list(WEAK))
def test_each_kind_of_guessable_key_is_named(reason: str, key: bytes) -> None:
    assert weak_key_reason(key) == reason


def test_a_descending_sequence_and_a_key_of_few_values_are_weak_too() -> None:
    assert weak_key_reason(bytes(range(255, 223, -1))) == "a counting sequence of bytes"
    few = bytes([0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87] * 3 + [0x88] * 7 + [0x80])
    assert weak_key_reason(few) == "only 9 distinct byte values"


def test_random_keys_are_not_weak() -> None:
    # 32 random bytes fall under any of the rules about once in 10^13 keys.
    assert [key for key in (os.urandom(32) for _ in range(5000)) if weak_key_reason(key)] == []


def test_a_documented_key_is_weak_whatever_it_looks_like() -> None:
    random_looking = os.urandom(32)
    assert weak_key_reason(random_looking) is None
    digests = DOCUMENTED_KEYS_SHA256 | {hashlib.sha256(random_looking).hexdigest()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("hopcast_shared.key_strength.DOCUMENTED_KEYS_SHA256", digests)
        assert weak_key_reason(random_looking) == "a key printed in Hopcast's documentation or examples"


def _spec(*keys: bytes) -> str:
    return ",".join(f"{i}:{base64.b64encode(k).decode()}" for i, k in enumerate(keys, start=1))


def test_production_refuses_a_weak_key_naming_its_id_not_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path))
    good, zero = os.urandom(32), bytes(32)
    spec = _spec(good, zero)
    with pytest.raises(SettingsError) as refused:
        load_keyring(CryptoSettings(token_keys=spec, hopcast_env="production"))
    message = str(refused.value)
    assert "key 2 is all zero bytes" in message and "hopcast tokens new-key" in message
    assert "key 1 " not in message  # the good key is not blamed
    for secret in (spec, *spec.split(","), base64.b64encode(zero).decode()[:20], base64.b64encode(good).decode()):
        assert secret not in message
    assert load_keyring(CryptoSettings(token_keys=_spec(good, os.urandom(32)), hopcast_env="production")).key_ids == (
        1,
        2,
    )


def test_the_dev_overlays_old_all_zero_key_is_refused_in_production() -> None:
    old_dev_key = "1:" + "A" * 43 + "="
    with pytest.raises(SettingsError, match="key 1 is all zero bytes"):
        load_keyring(CryptoSettings(token_keys=old_dev_key, hopcast_env="production"))


@pytest.mark.parametrize("env", ["local", "test"])
def test_outside_production_a_weak_key_loads_with_a_warning(env: str, caplog: pytest.LogCaptureFixture) -> None:
    key = b"\x42" * 32
    with caplog.at_level(logging.WARNING, logger="hopcast_shared.key_strength"):
        ring = load_keyring(CryptoSettings(token_keys=_spec(key), hopcast_env=env))  # type: ignore[arg-type]
    assert ring.weak_keys == {1: "one byte repeated"}
    assert "key 1 is one byte repeated" in caplog.text and "HOPCAST_ENV=production" in caplog.text
    assert base64.b64encode(key).decode() not in caplog.text


def test_a_keyring_built_in_code_knows_its_weak_keys_without_refusing_them() -> None:
    ring = Keyring({1: bytes(32), 2: os.urandom(32)})
    assert ring.weak_keys == {1: "all zero bytes"}
    assert "weak" not in repr(ring) and "AAAA" not in repr(ring)
