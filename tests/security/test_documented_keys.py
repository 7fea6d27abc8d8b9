"""Every token key that Hopcast's docs, examples or deploy files print, or ever printed, is refused
in production: a key copied from the repository never protects real tokens."""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
from pathlib import Path

from hopcast_shared.key_strength import weak_key_reason

ROOT = Path(__file__).resolve().parents[2]
# Files that document or deploy (code is not scanned: its keys are test fixtures, made at run time).
DOC_GLOBS = ("*.md", "*.txt", "*.env", "*.yaml", "*.yml", "*.toml", "*.json", "*.ini", "*.example", "*.sh")
DOC_NAMES = ("Dockerfile", "Makefile")
# A TOKEN_KEYS entry `id:base64key`, or a base64 value of 32 bytes assigned (`=`, `:`) on a line
# that says "key".
_B64 = r"[A-Za-z0-9+/_-]{43}=?"
ENTRY = re.compile(rf"(?<![A-Za-z0-9+/_-])[0-9]{{1,9}}:({_B64})(?![A-Za-z0-9+/_=-])")
LONE = re.compile(rf"[=:]\s*[\"']?({_B64})(?![A-Za-z0-9+/_=-])")


def key_bytes(text: str) -> bytes | None:
    standard = text.rstrip("=").translate(str.maketrans("-_", "+/"))
    try:
        data = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if len(data) == 32 else None


def keys_in(text: str) -> set[str]:
    found = set(ENTRY.findall(text))
    for line in text.splitlines():
        if "key" in line.lower():
            found.update(LONE.findall(line))
    return {value for value in found if key_bytes(value) is not None}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def documented_keys() -> dict[str, str]:
    """Key text -> where it was seen: the tracked doc files now, and every version of them."""
    pathspecs = [f"*{glob[1:]}" if glob.startswith("*") else glob for glob in DOC_GLOBS] + [
        f"*{name}" for name in DOC_NAMES
    ]
    seen: dict[str, str] = {}
    for path in _git("ls-files", "-z", "--", *pathspecs).split("\0"):
        if path and (ROOT / path).is_file():
            for key in keys_in((ROOT / path).read_text(errors="replace")):
                seen.setdefault(key, path)
    for key in keys_in(_git("log", "-p", "--format=", "--", *pathspecs)):
        seen.setdefault(key, "the history of the doc files")
    return seen


def test_the_scanner_finds_entries_and_lone_keys_but_not_hashes_or_names() -> None:
    zero, other = "A" * 43 + "=", base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
    text = (
        f"TOKEN_KEYS=1:{zero},2:{other}\n"
        f"a signing key: {base64.b64encode(b'k' * 32).decode()}\n"
        "the key lives in `hopcast_publisher/service_layer/token_rotat`\n"  # a path, not a key
        "--hash=sha256:66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n"
        "test_the_environment_is_compared_with_the_p\n"  # 43 characters, no key on the line
    )
    assert keys_in(text) == {zero, other, base64.b64encode(b"k" * 32).decode()}


def test_every_key_the_repository_documents_is_refused_in_production() -> None:
    found = documented_keys()
    # The all-zero key the dev overlay once committed is in the history, so the scan reaches it.
    assert "A" * 43 + "=" in found
    accepted = {key[:6]: where for key, where in found.items() if weak_key_reason(key_bytes(key) or b"") is None}
    assert accepted == {}, "add these keys' SHA-256 to key_strength.DOCUMENTED_KEYS_SHA256"
