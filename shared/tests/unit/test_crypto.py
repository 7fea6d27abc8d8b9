"""Token crypto: round trip, tampering, wrong key, wrong owner, rotation, key loading, the CLI."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hopcast_shared.contract.fields import TOKEN_CIPHERTEXT_PATTERN
from hopcast_shared.crypto import (
    CIPHERTEXT_PATTERN,
    TRANSPORT_AAD,
    Keyring,
    TokenDecryptError,
    is_ciphertext,
    load_keyring,
    owner_aad,
)
from hopcast_shared.crypto_cli import app
from hopcast_shared.settings import CryptoSettings, SettingsError

KEYS = Keyring.generate((1, 2))
ALICE = owner_aad("social_account", "alice")
BOB = owner_aad("social_account", "bob")
TOKEN = "EAAGm0PX4ZCpsBAKZCZBqQ-very-secret"  # noqa: S105 (made up)


def test_round_trip_with_the_newest_key_and_the_contract_format() -> None:
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)
    assert sealed.startswith("v2:")
    assert CIPHERTEXT_PATTERN.match(sealed) and is_ciphertext(sealed)
    assert __import__("re").match(TOKEN_CIPHERTEXT_PATTERN, sealed)  # the contract accepts it
    assert TOKEN not in sealed
    assert KEYS.decrypt(sealed, associated_data=ALICE) == TOKEN


def test_every_encryption_uses_a_fresh_nonce() -> None:
    assert KEYS.encrypt(TOKEN, associated_data=ALICE) != KEYS.encrypt(TOKEN, associated_data=ALICE)


@pytest.mark.parametrize("part", [1, 2])
def test_a_tampered_ciphertext_is_refused(part: int) -> None:
    pieces = KEYS.encrypt(TOKEN, associated_data=ALICE).split(":")
    raw = bytearray(base64.urlsafe_b64decode(pieces[part] + "=="))
    raw[-1] ^= 0x01
    pieces[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenDecryptError) as caught:
        KEYS.decrypt(":".join(pieces), associated_data=ALICE)
    assert TOKEN not in str(caught.value)


def test_the_wrong_key_an_unknown_key_and_the_wrong_owner_are_refused() -> None:
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)
    other = Keyring.generate((2,))
    with pytest.raises(TokenDecryptError):
        other.decrypt(sealed, associated_data=ALICE)
    with pytest.raises(TokenDecryptError, match="key 2"):
        Keyring.generate((1,)).decrypt(sealed, associated_data=ALICE)
    with pytest.raises(TokenDecryptError):
        KEYS.decrypt(sealed, associated_data=BOB)
    with pytest.raises(TokenDecryptError):
        KEYS.decrypt(TOKEN, associated_data=ALICE)  # plaintext is no ciphertext


def test_rotation_reencrypts_under_the_newest_key() -> None:
    old = Keyring.generate((1,))
    sealed = old.encrypt(TOKEN, associated_data=ALICE)
    key1 = old._ciphers[1]  # the same key 1 in a keyring that also has key 2
    both = Keyring.generate((2,))
    both._ciphers[1] = key1
    assert both.needs_rotation(sealed)
    rotated = both.reencrypt(sealed, associated_data=ALICE)
    assert rotated.startswith("v2:") and not both.needs_rotation(rotated)
    assert both.decrypt(rotated, associated_data=ALICE) == TOKEN


def test_parse_reads_ids_and_refuses_bad_keys_without_leaking_them() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    ring = Keyring.parse(f"1:{key}, 3:{base64.urlsafe_b64encode(os.urandom(32)).decode()}")
    assert ring.key_ids == (1, 3) and ring.active_key_id == 3
    short = base64.b64encode(b"too-short-key-material").decode()
    for spec, complaint in [
        (f"1:{short}", "32 bytes"),
        (f"1:{key},1:{key}", "twice"),
        (f"x:{key}", "id:base64key"),
        ("1:%%%notbase64", "base64"),
    ]:
        with pytest.raises(SettingsError, match=complaint) as caught:
            Keyring.parse(spec)
        assert key not in str(caught.value) and short not in str(caught.value)


def test_a_local_key_is_generated_once_with_tight_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path))
    settings = CryptoSettings(token_keys=None, hopcast_env="local")
    first = load_keyring(settings)
    path = tmp_path / "keys" / "token-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    sealed = first.encrypt(TOKEN, associated_data=ALICE)
    assert load_keyring(settings).decrypt(sealed, associated_data=ALICE) == TOKEN  # reused


def test_production_requires_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path))
    with pytest.raises(SettingsError, match="TOKEN_KEYS is required in production"):
        load_keyring(CryptoSettings(token_keys=None, hopcast_env="production"))
    assert not (tmp_path / "keys").exists()


def test_the_cli_encrypts_stdin_for_upstream_producers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = f"1:{base64.b64encode(os.urandom(32)).decode()}"
    monkeypatch.setenv("TOKEN_KEYS", spec)
    result = CliRunner().invoke(app, ["encrypt"], input=TOKEN + "\n")
    assert result.exit_code == 0, result.output
    sealed = result.output.strip()
    assert Keyring.parse(spec).decrypt(sealed, associated_data=TRANSPORT_AAD) == TOKEN
    bound = CliRunner().invoke(app, ["encrypt", "--owner", "social_account:alice"], input=TOKEN)
    assert Keyring.parse(spec).decrypt(bound.output.strip(), associated_data=ALICE) == TOKEN
    assert CliRunner().invoke(app, ["new-key"]).output.startswith("2:")


@given(st.text(max_size=300))
def test_any_text_round_trips(plaintext: str) -> None:
    assert KEYS.decrypt(KEYS.encrypt(plaintext, associated_data=ALICE), associated_data=ALICE) == plaintext
