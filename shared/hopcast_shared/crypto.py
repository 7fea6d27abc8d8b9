"""Token encryption: AES-256-GCM with a 96-bit random nonce, the key id inside every
ciphertext, and associated data that binds a ciphertext to its owner.

Format: `v<key id>:<base64url nonce>:<base64url ciphertext+tag>` (no padding), e.g.
`v2:AAECAwQFBgcICQoL:...`. A keyring holds every key by id; the highest id encrypts and
every id decrypts, so keys rotate by adding one and re-encrypting (`needs_rotation`).
Keys come from TOKEN_KEYS; locally a key is generated into the state folder on first use;
with HOPCAST_ENV=production TOKEN_KEYS is required, and a weak or documented key in it is
refused (key_strength).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hopcast_shared.key_strength import refuse_weak_keys, weak_key_reason
from hopcast_shared.settings import CryptoSettings, SettingsError, load, state_dir

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
# Ids are written with at most 9 digits so that every ciphertext matches the pattern below.
MAX_KEY_ID: Final = 999_999_999

# The shape of a ciphertext, as a plain string so the event contract and JSON Schema can
# share it: 16 characters are exactly a 12-byte nonce; 22 or more hold at least the 16-byte
# tag (an empty plaintext). Match it with `fullmatch` (or `is_ciphertext`): in Python `$`
# also matches before a trailing newline.
CIPHERTEXT_PATTERN: Final = r"^v[1-9][0-9]{0,8}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{22,}$"
_CIPHERTEXT_RE: Final = re.compile(CIPHERTEXT_PATTERN)


_OWNER_KIND_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_KEY_ID_RE: Final = re.compile(r"[0-9]+")
_BASE64_KEY_RE: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


class TokenDecryptError(ValueError):
    """A ciphertext that cannot be opened: malformed, unknown key, tampered, or another owner's.
    The message never holds the token or key material."""


def owner_aad(kind: str, owner_id: str) -> bytes:
    """Associated data binding a ciphertext to one owner, e.g. ("social_account", "<uuid>").

    The kind is a lowercase identifier, so `hopcast:<kind>:<id>` reads back one way only
    (a colon in the kind could make two owners share associated data).
    """
    if not _OWNER_KIND_RE.fullmatch(kind):
        raise ValueError(f"owner kind {kind!r} must be a lowercase identifier such as social_account")
    if not owner_id:
        raise ValueError("owner id must not be empty")
    return f"hopcast:{kind}:{owner_id}".encode()


def account_transit_aad(organization_id: object, social_account_id: object) -> bytes:
    """Associated data of a social account's token in transit (SocialAccountConnected and
    ...Updated from upstream, SocialAccountTokensRefreshed back to it): bound to the
    organization and the account, so a ciphertext moved to another account or another
    organization does not open. Ids are UUIDs (str or uuid.UUID), written canonically so every
    producer binds to the same bytes; the hyphenated kind cannot be an `owner_aad` kind, so a
    token in transit never opens as a stored one, nor the other way round.
    """
    organization = uuid.UUID(str(organization_id))
    account = uuid.UUID(str(social_account_id))
    return f"hopcast:token-transit:v2:organization:{organization}:social_account:{account}".encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # base64 ignores the unused low bits of the last character; insisting on the canonical
    # spelling means any change to a token's text is refused, not only changes to its bytes.
    if _b64encode(data) != text:
        raise ValueError("non-canonical base64")
    return data


def is_ciphertext(value: str) -> bool:
    """Whether a value has the shape of a token ciphertext (it may still fail to decrypt)."""
    return isinstance(value, str) and _CIPHERTEXT_RE.fullmatch(value) is not None


def _split(token: str) -> tuple[int, str, str]:
    if not is_ciphertext(token):
        raise TokenDecryptError("not a token ciphertext")
    key_id, nonce, sealed = token.split(":")
    return int(key_id[1:]), nonce, sealed


def key_id_of(token: str) -> int:
    """The id of the key a ciphertext was made with; TokenDecryptError if it is no ciphertext."""
    return _split(token)[0]


def _decode_key(key_id: int, encoded: str) -> bytes:
    # Strict: a stray character must fail, not be skipped and yield a different key.
    if not _BASE64_KEY_RE.fullmatch(encoded):
        raise SettingsError(f"TOKEN_KEYS key {key_id} is not valid base64")
    standard = encoded.rstrip("=").translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"TOKEN_KEYS key {key_id} is not valid base64") from None


class Keyring:
    """Keys by id; the highest id encrypts, every id decrypts."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise SettingsError("TOKEN_KEYS holds no key: expected `id:base64key[,id:base64key...]`")
        for key_id, key in keys.items():
            if not 1 <= key_id <= MAX_KEY_ID:
                raise SettingsError(f"token key id {key_id} must be an integer from 1 to {MAX_KEY_ID}")
            if len(key) != KEY_BYTES:
                raise SettingsError(f"token key {key_id} must be {KEY_BYTES} bytes, not {len(key)}")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        # Why a key must not protect real tokens (key_strength), by id; never the key itself.
        self.weak_keys = {key_id: reason for key_id, key in keys.items() if (reason := weak_key_reason(key))}
        self.active_key_id: int = max(keys)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids}, active_key_id={self.active_key_id})"

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Read `id:base64key[,id:base64key...]` (standard or URL-safe base64 of 32 bytes)."""
        keys: dict[int, bytes] = {}
        for position, entry in enumerate((part.strip() for part in spec.split(",") if part.strip()), start=1):
            key_id_text, sep, encoded = entry.partition(":")
            key_id_text = key_id_text.strip()
            if not sep or not _KEY_ID_RE.fullmatch(key_id_text):
                # Names the position only: the entry itself may be a key pasted without its id.
                raise SettingsError(f"TOKEN_KEYS entry {position} is not `id:base64key`")
            key_id = int(key_id_text)
            if key_id in keys:
                raise SettingsError(f"TOKEN_KEYS has key id {key_id} twice")
            keys[key_id] = _decode_key(key_id, encoded.strip())
        return cls(keys)

    @classmethod
    def generate(cls, key_ids: tuple[int, ...] = (1,)) -> Keyring:
        """Fresh random keys under the given ids (for tests and the local default key)."""
        return cls({key_id: AESGCM.generate_key(bit_length=256) for key_id in key_ids})

    @property
    def key_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self._ciphers))

    def encrypt(self, plaintext: str, *, associated_data: bytes) -> str:
        # A random 96-bit nonce per message: with one key, collisions stay negligible far
        # beyond the number of tokens Hopcast will ever seal.
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active_key_id].encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        return f"v{self.active_key_id}:{_b64encode(nonce)}:{_b64encode(sealed)}"

    def decrypt(self, token: str, *, associated_data: bytes) -> str:
        key_id, nonce_text, sealed_text = _split(token)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise TokenDecryptError(f"token was encrypted under key {key_id}, which this keyring does not hold")
        try:
            return cipher.decrypt(_b64decode(nonce_text), _b64decode(sealed_text), associated_data).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            # One message for every cause, chained to nothing: the details would not help an
            # operator and could help an attacker tell the cases apart.
            raise TokenDecryptError("token does not decrypt: tampered, another key, or another owner") from None

    def needs_rotation(self, token: str) -> bool:
        """Whether a ciphertext was made under an older key than the active one."""
        return key_id_of(token) < self.active_key_id

    def reencrypt(self, token: str, *, associated_data: bytes) -> str:
        """The same plaintext under the active key (and a fresh nonce)."""
        return self.encrypt(self.decrypt(token, associated_data=associated_data), associated_data=associated_data)

    def new_key_entry(self) -> str:
        """A TOKEN_KEYS entry for a fresh key with the next id, to append for a rotation."""
        return new_key_entry(self.active_key_id + 1)


def new_key_entry(key_id: int) -> str:
    """A TOKEN_KEYS entry `id:base64key` for a fresh random key."""
    if not 1 <= key_id <= MAX_KEY_ID:
        raise SettingsError(f"token key id {key_id} must be an integer from 1 to {MAX_KEY_ID}")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def local_keys_file() -> Path:
    return state_dir() / "keys" / "token-keys"


def _create_local_keys_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    # mkstemp makes a uniquely named file with mode 0600, so concurrent first starts each
    # write their own; os.link then publishes one atomically and never replaces a key
    # that another process published first (the losers read that one).
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".token-keys.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key_entry(1) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def load_keyring(settings: CryptoSettings | None = None) -> Keyring:
    """TOKEN_KEYS if set; else, outside production, the local key file (created on first use)."""
    settings = settings or load(CryptoSettings)
    if settings.token_keys is not None:
        keyring = Keyring.parse(settings.token_keys.get_secret_value())
        refuse_weak_keys(keyring.weak_keys, production=settings.hopcast_env == "production")
        return keyring
    if settings.hopcast_env == "production":
        raise SettingsError(
            "TOKEN_KEYS is required in production: `id:base64key[,id:base64key...]` of 32-byte AES keys "
            "(make one with `hopcast tokens new-key`)"
        )
    path = local_keys_file()
    if not path.exists():
        _create_local_keys_file(path)
    try:
        return Keyring.parse(path.read_text())
    except SettingsError as exc:
        raise SettingsError(f"the local token key file {path} is unreadable: {exc}") from None
