"""Token crypto: round trip, tampering, wrong key, wrong owner, rotation, key loading, the CLI."""

from __future__ import annotations

import base64
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hopcast_shared.crypto import (
    CIPHERTEXT_PATTERN,
    Keyring,
    TokenDecryptError,
    account_transit_aad,
    is_ciphertext,
    key_id_of,
    load_keyring,
    owner_aad,
)
from hopcast_shared.crypto_cli import app
from hopcast_shared.settings import CryptoSettings, SettingsError

KEY_1 = base64.b64encode(os.urandom(32)).decode()
KEY_2 = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
KEYS = Keyring.parse(f"1:{KEY_1},2:{KEY_2}")
ALICE = owner_aad("social_account", "alice")
BOB = owner_aad("social_account", "bob")
ORG_A, ORG_B = "5b9c7a8e-1f0d-4c2b-9a3e-000000000001", "5b9c7a8e-1f0d-4c2b-9a3e-000000000002"
ACCOUNT_1, ACCOUNT_2 = "0d6f3c1a-8b2e-4f7a-9c5d-000000000001", "0d6f3c1a-8b2e-4f7a-9c5d-000000000002"
IN_TRANSIT = account_transit_aad(ORG_A, ACCOUNT_1)
TOKEN = "EAAGm0PX4ZCpsBAKZCZBqQ-very-secret"  # noqa: S105 (made up)
SPEC_PATTERN = r"^v[1-9][0-9]{0,8}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{22,}$"


def _flip(token: str, part: int, index: int) -> str:
    """The token with one bit flipped in byte `index` of its nonce (part 1) or sealed body (part 2)."""
    pieces = token.split(":")
    raw = bytearray(base64.urlsafe_b64decode(pieces[part] + "=" * (-len(pieces[part]) % 4)))
    raw[index] ^= 0x01
    pieces[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ":".join(pieces)


def _refused(token: str, keyring: Keyring = KEYS, aad: bytes = ALICE) -> TokenDecryptError:
    with pytest.raises(TokenDecryptError) as caught:
        keyring.decrypt(token, associated_data=aad)
    # Whatever the cause, the message holds neither the plaintext nor any key.
    for secret in (TOKEN, KEY_1, KEY_2):
        assert secret not in str(caught.value)
    return caught.value


def test_round_trip_under_the_newest_key_in_the_documented_format() -> None:
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)
    assert sealed.startswith("v2:")
    assert CIPHERTEXT_PATTERN == SPEC_PATTERN  # the exact string the contract shares
    assert re.fullmatch(SPEC_PATTERN, sealed) and is_ciphertext(sealed)
    assert len(sealed.split(":")[1]) == 16  # 12-byte nonce
    assert TOKEN not in sealed
    assert KEYS.decrypt(sealed, associated_data=ALICE) == TOKEN


def test_an_empty_plaintext_is_exactly_the_tag_and_still_matches_the_pattern() -> None:
    sealed = KEYS.encrypt("", associated_data=ALICE)
    assert len(sealed.split(":")[2]) == 22  # the 16-byte tag: the pattern's lower bound is tight
    assert is_ciphertext(sealed)
    assert KEYS.decrypt(sealed, associated_data=ALICE) == ""


def test_every_encryption_uses_a_fresh_nonce() -> None:
    sealed = {KEYS.encrypt(TOKEN, associated_data=ALICE) for _ in range(50)}
    assert len(sealed) == 50
    assert len({token.split(":")[1] for token in sealed}) == 50


@pytest.mark.parametrize(
    ("part", "index"),
    [(1, 0), (1, 11), (2, 0), (2, -1), (2, -16)],
    ids=["nonce-first", "nonce-last", "body-first", "tag-last", "tag-first"],
)
def test_a_flipped_bit_anywhere_is_refused(part: int, index: int) -> None:
    tampered = _flip(KEYS.encrypt(TOKEN, associated_data=ALICE), part, index)
    assert is_ciphertext(tampered)  # still well formed: only the authentication catches it
    assert "tampered" in str(_refused(tampered))


@given(position=st.integers(min_value=0), replacement=st.sampled_from("AQgw_-9z"))
def test_any_change_to_the_text_of_a_token_is_refused(position: int, replacement: str) -> None:
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)
    body_start = sealed.index(":") + 1  # change nonce or body, never the key id or separators
    index = body_start + position % (len(sealed) - body_start)
    if sealed[index] in (":", replacement):
        return
    changed = sealed[:index] + replacement + sealed[index + 1 :]
    # Includes the unused low bits of the last base64 character, which only a canonical
    # decoding notices.
    _refused(changed)


def test_a_truncated_token_or_a_moved_key_id_is_refused() -> None:
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)
    _refused(sealed[:-4])
    _refused("v1" + sealed[2:])  # claims key 1, which the keyring holds but did not seal it


def test_a_token_differing_only_in_unused_base64_bits_is_refused() -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)  # 50 sealed bytes: 67 characters, 2 bits unused
    assert len(sealed.split(":")[2]) * 6 % 8 != 0
    twin = sealed[:-1] + alphabet[alphabet.index(sealed[-1]) ^ 1]  # same bytes, other spelling
    assert base64.urlsafe_b64decode(twin.split(":")[2] + "=") == base64.urlsafe_b64decode(sealed.split(":")[2] + "=")
    _refused(twin)


def test_the_wrong_key_an_unknown_key_and_the_wrong_owner_are_refused() -> None:
    sealed = KEYS.encrypt(TOKEN, associated_data=ALICE)
    _refused(sealed, keyring=Keyring.generate((2,)))  # same id, another key
    assert "key 2" in str(_refused(sealed, keyring=Keyring.parse(f"1:{KEY_1}")))
    _refused(sealed, aad=BOB)  # a token copied onto another account's row
    _refused(sealed, aad=IN_TRANSIT)  # a stored token is no token in transit
    assert KEYS.decrypt(sealed, associated_data=ALICE) == TOKEN


@pytest.mark.parametrize(
    "value",
    [
        TOKEN,
        "",
        "v0:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",  # key ids start at 1
        "v1:AAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",  # 15-character nonce
        "v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAA",  # 21 characters: shorter than a tag
        "v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==",  # padding is not part of the format
        "v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA\n",  # Python's `$` alone would accept it
        "v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAA+/",  # standard, not URL-safe, base64
        "v1234567890:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_values_are_no_ciphertext(value: str) -> None:
    assert not is_ciphertext(value)
    assert "not a token ciphertext" in str(_refused(value))
    with pytest.raises(TokenDecryptError):
        KEYS.needs_rotation(value)


def test_rotation_reencrypts_under_the_newest_key() -> None:
    old = Keyring.parse(f"1:{KEY_1}")
    sealed = old.encrypt(TOKEN, associated_data=ALICE)
    assert key_id_of(sealed) == 1 and not old.needs_rotation(sealed)
    assert KEYS.decrypt(sealed, associated_data=ALICE) == TOKEN  # every key decrypts
    assert KEYS.needs_rotation(sealed)
    rotated = KEYS.reencrypt(sealed, associated_data=ALICE)
    assert rotated.startswith("v2:") and not KEYS.needs_rotation(rotated)
    assert KEYS.decrypt(rotated, associated_data=ALICE) == TOKEN
    _refused(rotated, keyring=old)  # really under key 2 now
    with pytest.raises(TokenDecryptError):  # rotation checks the owner too
        KEYS.reencrypt(sealed, associated_data=BOB)


def test_parse_reads_ids_in_either_base64_alphabet() -> None:
    standard = base64.b64encode(b"\xfb\xff" * 16).decode()  # has `+` and `/`
    urlsafe = base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode().rstrip("=")  # `-`, `_`, no padding
    ring = Keyring.parse(f" 3:{urlsafe} ,\n1:{standard},")
    assert ring.key_ids == (1, 3) and ring.active_key_id == 3
    # Both spellings are the same key: what one seals, the other opens.
    sealed = Keyring.parse(f"1:{standard}").encrypt(TOKEN, associated_data=ALICE)
    assert Keyring.parse(f"1:{urlsafe}").decrypt(sealed, associated_data=ALICE) == TOKEN


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (f"1:{base64.b64encode(b'too-short-key-material').decode()}", "32 bytes, not 22"),
        (f"1:{KEY_1},1:{KEY_2}", "key id 1 twice"),
        (f"x:{KEY_1}", "entry 1 is not `id:base64key`"),
        (KEY_1, "entry 1 is not `id:base64key`"),  # a key pasted without its id
        (f"1:{KEY_1},\N{SUPERSCRIPT TWO}:{KEY_2}", "entry 2 is not"),
        (f"0:{KEY_1}", "from 1 to 999999999"),
        (f"1000000000:{KEY_1}", "from 1 to 999999999"),
        (f"1:{KEY_1[:10]}!!{KEY_1[10:]}", "not valid base64"),  # not skipped into another key
        (f"1:{KEY_1[:10]}={KEY_1[10:]}", "not valid base64"),
        (f"1:{KEY_1.rstrip('=')}AA", "not valid base64"),  # 45 characters cannot be base64
        (f"1:{KEY_1[:-4]}AAAA{KEY_1[-4:]}", "32 bytes, not 35"),
        ("", "holds no key"),
        (" , ", "holds no key"),
    ],
)
def test_parse_refuses_bad_keys_without_leaking_them(spec: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(complaint)) as caught:
        Keyring.parse(spec)
    message = str(caught.value)
    for secret in (KEY_1, KEY_2, KEY_1[:10], KEY_1[10:]):
        assert secret not in message
    assert caught.value.__cause__ is None  # no chained decoder error repeating the input


def test_a_keyring_shows_ids_never_keys() -> None:
    assert repr(KEYS) == "Keyring(key_ids=(1, 2), active_key_id=2)"
    assert KEY_1 not in repr(KEYS.__dict__) and KEY_2 not in repr(KEYS.__dict__)


def test_owner_binding_reads_back_one_way_only() -> None:
    assert owner_aad("social_account", "42") == b"hopcast:social_account:42"
    for kind, owner_id in [("social:account", "42"), ("", "42"), ("Social", "42"), ("social_account", "")]:
        with pytest.raises(ValueError):
            owner_aad(kind, owner_id)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("TOKEN_KEYS", raising=False)
    monkeypatch.delenv("HOPCAST_ENV", raising=False)
    return tmp_path


@pytest.mark.parametrize("env", ["local", "test"])
def test_a_local_key_is_generated_once_with_tight_permissions(state: Path, env: str) -> None:
    settings = CryptoSettings(token_keys=None, hopcast_env=env)
    first = load_keyring(settings)
    path = state / "keys" / "token-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert first.key_ids == (1,)
    sealed = first.encrypt(TOKEN, associated_data=ALICE)
    before = path.read_text()
    assert load_keyring(settings).decrypt(sealed, associated_data=ALICE) == TOKEN  # reused
    assert path.read_text() == before
    assert os.listdir(path.parent) == ["token-keys"]  # no temporary file left behind


def test_concurrent_first_starts_agree_on_one_local_key(state: Path) -> None:
    settings = CryptoSettings(token_keys=None, hopcast_env="local")
    start = threading.Barrier(8)
    rings: list[Keyring] = []

    def first_start() -> None:
        start.wait()
        rings.append(load_keyring(settings))

    threads = [threading.Thread(target=first_start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rings) == 8
    sealed = rings[0].encrypt(TOKEN, associated_data=ALICE)
    assert all(ring.decrypt(sealed, associated_data=ALICE) == TOKEN for ring in rings)
    assert os.listdir(state / "keys") == ["token-keys"]


def test_token_keys_from_the_environment_win_over_the_local_file(state: Path) -> None:
    load_keyring(CryptoSettings(token_keys=None, hopcast_env="local"))  # a local file exists
    ring = load_keyring(CryptoSettings(token_keys=f"1:{KEY_1},2:{KEY_2}", hopcast_env="local"))
    assert ring.decrypt(KEYS.encrypt(TOKEN, associated_data=ALICE), associated_data=ALICE) == TOKEN


def test_production_requires_keys_from_the_environment(state: Path) -> None:
    with pytest.raises(SettingsError, match="TOKEN_KEYS is required in production"):
        load_keyring(CryptoSettings(token_keys=None, hopcast_env="production"))
    assert not (state / "keys").exists()  # no silent local key in production
    ring = load_keyring(CryptoSettings(token_keys=f"7:{KEY_1}", hopcast_env="production"))
    assert ring.active_key_id == 7


def test_a_damaged_local_key_file_is_named_without_its_content(state: Path) -> None:
    path = state / "keys" / "token-keys"
    path.parent.mkdir(parents=True)
    path.write_text(f"1:{KEY_1[:20]}\n")
    with pytest.raises(SettingsError, match="token-keys") as caught:
        load_keyring(CryptoSettings(token_keys=None, hopcast_env="local"))
    assert KEY_1[:20] not in str(caught.value)


def test_the_cli_encrypts_stdin_bound_to_the_organization_and_account(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_KEYS", f"1:{KEY_1},2:{KEY_2}")
    args = ["encrypt", "--organization", ORG_A.upper(), "--account", ACCOUNT_1]
    result = CliRunner().invoke(app, args, input=TOKEN + "\n")
    assert result.exit_code == 0, result.output
    sealed = result.output.strip()
    assert sealed.startswith("v2:") and TOKEN not in result.output
    assert KEYS.decrypt(sealed, associated_data=IN_TRANSIT) == TOKEN  # ids read canonically
    # Moved to another account, or the same account id in another organization: dead.
    _refused(sealed, aad=account_transit_aad(ORG_A, ACCOUNT_2))
    _refused(sealed, aad=account_transit_aad(ORG_B, ACCOUNT_1))
    _refused(sealed, aad=owner_aad("social_account", ACCOUNT_1))  # nor is it a stored token


def test_transit_binding_is_canonical_and_unlike_any_owner_binding() -> None:
    assert account_transit_aad(ORG_A.upper(), "{" + ACCOUNT_1 + "}") == IN_TRANSIT
    assert account_transit_aad(ORG_A, ACCOUNT_1) != account_transit_aad(ACCOUNT_1, ORG_A)
    assert IN_TRANSIT.startswith(b"hopcast:token-transit:v2:")
    with pytest.raises(ValueError, match="lowercase identifier"):
        owner_aad("token-transit", "x")  # so no stored owner's binding can equal a transit binding
    with pytest.raises(ValueError, match=r"UUID|badly formed"):
        account_transit_aad("not-a-uuid", ACCOUNT_1)


@pytest.mark.parametrize(
    ("stdin", "plaintext"),
    [(TOKEN, TOKEN), (TOKEN + "\r\n", TOKEN), (TOKEN + "\n\n", TOKEN + "\n"), (" " + TOKEN + " \n", f" {TOKEN} ")],
)
def test_the_cli_strips_one_line_ending_only(monkeypatch: pytest.MonkeyPatch, stdin: str, plaintext: str) -> None:
    monkeypatch.setenv("TOKEN_KEYS", f"1:{KEY_1}")
    result = CliRunner().invoke(app, ["encrypt", "--owner", "social_account:alice"], input=stdin)
    assert result.exit_code == 0, result.output
    assert KEYS.decrypt(result.output.strip(), associated_data=ALICE) == plaintext


@pytest.mark.parametrize(
    ("args", "stdin", "complaint"),
    [
        (["encrypt", "--organization", ORG_A, "--account", ACCOUNT_1], "", "no token on stdin"),
        (["encrypt", "--owner", "social_account:alice"], "\n", "no token on stdin"),
        (["encrypt"], TOKEN, "--organization ID and --account ID"),
        (["encrypt", "--organization", ORG_A], TOKEN, "--organization ID and --account ID"),
        (["encrypt", "--organization", "acme", "--account", ACCOUNT_1], TOKEN, "expected a UUID"),
        (["encrypt", "--owner", "social_account:a", "--account", ACCOUNT_1], TOKEN, "either --owner"),
        (["encrypt", "--owner", "alice"], TOKEN, "KIND:ID"),
        (["encrypt", "--owner", "Social Account:alice"], TOKEN, "KIND:ID"),
        (["encrypt", "--owner", "social_account:"], TOKEN, "KIND:ID"),
    ],
)
def test_the_cli_refuses_bad_input_without_echoing_the_token(
    monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str, complaint: str
) -> None:
    monkeypatch.setenv("TOKEN_KEYS", f"1:{KEY_1}")
    result = CliRunner().invoke(app, args, input=stdin)
    assert result.exit_code == 2
    assert complaint in result.output
    assert TOKEN not in result.output and "v1:" not in result.output


def test_new_key_prints_the_next_id(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_KEYS", f"1:{KEY_1},3:{KEY_2}")
    entry = CliRunner().invoke(app, ["new-key"]).output.strip()
    assert entry.startswith("4:")
    assert len(base64.b64decode(entry.split(":", 1)[1], validate=True)) == 32
    grown = Keyring.parse(f"1:{KEY_1},3:{KEY_2},{entry}")  # appending it is a valid TOKEN_KEYS
    assert grown.active_key_id == 4
    monkeypatch.delenv("TOKEN_KEYS")
    monkeypatch.setenv("HOPCAST_ENV", "production")
    assert CliRunner().invoke(app, ["new-key"]).output.startswith("1:")  # the first production key


@given(st.text(max_size=300))
def test_any_text_round_trips(plaintext: str) -> None:
    sealed = KEYS.encrypt(plaintext, associated_data=ALICE)
    assert re.fullmatch(SPEC_PATTERN, sealed)
    assert KEYS.decrypt(sealed, associated_data=ALICE) == plaintext
