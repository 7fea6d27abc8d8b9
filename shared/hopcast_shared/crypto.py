"""Token encryption: AES-256-GCM with a 96-bit random nonce, the key id inside every
ciphertext, and associated data that binds a ciphertext to its owner.

Format: `v<key id>:<base64url nonce>:<base64url ciphertext+tag>` (no padding), e.g.
`v2:AAECAwQFBgcICQoL:...`. A keyring holds every key by id; the highest id encrypts and
every id decrypts, so keys rotate by adding one and re-encrypting (`needs_rotation`).
Keys come from TOKEN_KEYS; locally a key is generated into the state folder on first use;
with HOPCAST_ENV=production TOKEN_KEYS is required.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hopcast_shared.settings import CryptoSettings, SettingsError, load, state_dir

KEY_BYTES = 32
NONCE_BYTES = 12
CIPHERTEXT_PATTERN = re.compile(r"^v([1-9][0-9]{0,8}):([A-Za-z0-9_-]{16}):([A-Za-z0-9_-]{22,})$")
# What `hopcast tokens encrypt` binds to by default: a token in transit from upstream.
TRANSPORT_AAD = b"hopcast:token:v1"


class TokenDecryptError(ValueError):
    """A ciphertext that cannot be opened: malformed, unknown key, tampered, or another owner's.
    The message never holds the token or key material."""


def owner_aad(kind: str, owner_id: str) -> bytes:
    """Associated data binding a ciphertext to one owner, e.g. ("social_account", "<uuid>")."""
    return f"hopcast:{kind}:{owner_id}".encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_ciphertext(value: str) -> bool:
    """Whether a value has the shape of a token ciphertext (it may still fail to decrypt)."""
    return isinstance(value, str) and CIPHERTEXT_PATTERN.match(value) is not None


def key_id_of(token: str) -> int:
    match = CIPHERTEXT_PATTERN.match(token)
    if match is None:
        raise TokenDecryptError("not a token ciphertext")
    return int(match.group(1))


class Keyring:
    """Keys by id; the highest id encrypts, every id decrypts."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise SettingsError("the token keyring is empty")
        for key_id, key in keys.items():
            if key_id < 1:
                raise SettingsError(f"token key id {key_id} must be a positive integer")
            if len(key) != KEY_BYTES:
                raise SettingsError(f"token key {key_id} must be {KEY_BYTES} bytes, not {len(key)}")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = max(keys)

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Read `id:base64key[,id:base64key...]` (standard or URL-safe base64 of 32 bytes)."""
        keys: dict[int, bytes] = {}
        for position, entry in enumerate(part.strip() for part in spec.split(",") if part.strip()):
            key_id_text, sep, encoded = entry.partition(":")
            if not sep or not key_id_text.strip().isdigit():
                raise SettingsError(f"TOKEN_KEYS entry {position + 1} is not `id:base64key`")
            key_id = int(key_id_text)
            if key_id in keys:
                raise SettingsError(f"TOKEN_KEYS has key id {key_id} twice")
            try:
                raw = encoded.strip()
                key = base64.b64decode(
                    raw + "=" * (-len(raw) % 4), altchars=b"-_" if "-" in raw or "_" in raw else None
                )
            except (binascii.Error, ValueError):
                raise SettingsError(f"TOKEN_KEYS key {key_id} is not valid base64") from None
            keys[key_id] = key
        return cls(keys)

    @classmethod
    def generate(cls, key_ids: tuple[int, ...] = (1,)) -> Keyring:
        return cls({key_id: AESGCM.generate_key(bit_length=256) for key_id in key_ids})

    @property
    def key_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self._ciphers))

    def encrypt(self, plaintext: str, *, associated_data: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active_key_id].encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        return f"v{self.active_key_id}:{_b64encode(nonce)}:{_b64encode(sealed)}"

    def decrypt(self, token: str, *, associated_data: bytes) -> str:
        match = CIPHERTEXT_PATTERN.match(token) if isinstance(token, str) else None
        if match is None:
            raise TokenDecryptError("not a token ciphertext")
        key_id = int(match.group(1))
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise TokenDecryptError(f"token was encrypted under key {key_id}, which this keyring does not hold")
        try:
            nonce, sealed = _b64decode(match.group(2)), _b64decode(match.group(3))
            if len(nonce) != NONCE_BYTES:
                raise TokenDecryptError("token nonce has the wrong length")
            return cipher.decrypt(nonce, sealed, associated_data).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            raise TokenDecryptError("token does not decrypt: tampered, another key, or another owner") from None

    def needs_rotation(self, token: str) -> bool:
        return key_id_of(token) < self.active_key_id

    def reencrypt(self, token: str, *, associated_data: bytes) -> str:
        """The same plaintext under the active key (and a fresh nonce)."""
        return self.encrypt(self.decrypt(token, associated_data=associated_data), associated_data=associated_data)

    def new_key_entry(self) -> str:
        """A TOKEN_KEYS entry for a fresh key with the next id, to append for a rotation."""
        return f"{self.active_key_id + 1}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def local_keys_file() -> Path:
    return state_dir() / "keys" / "token-keys"


def load_keyring(settings: CryptoSettings | None = None) -> Keyring:
    """TOKEN_KEYS if set; else, outside production, the local key file (created on first use)."""
    settings = settings or load(CryptoSettings)
    if settings.token_keys is not None:
        return Keyring.parse(settings.token_keys.get_secret_value())
    if settings.hopcast_env == "production":
        raise SettingsError("TOKEN_KEYS is required in production: `id:base64key[,...]` of 32-byte AES keys")
    path = local_keys_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        entry = f"1:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}\n"
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(entry)
        with contextlib.suppress(FileExistsError):  # another process wrote it first: keep theirs
            os.link(temporary, path)  # atomic, and never replaces an existing key
        temporary.unlink(missing_ok=True)
    return Keyring.parse(path.read_text().strip())
