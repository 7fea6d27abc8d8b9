"""Dependency audit (`make audit`, part of `make test`): known vulnerabilities of the pinned
dependencies, and the environment held to the pins.

pip-audit's PyPI service asks `https://pypi.org/pypi/<name>/<version>/json` for each pin; this
machine (and CI, on the same network) reaches PyPI's index and its per-project JSON but not the
per-version JSON (404) nor OSV's API, so pip-audit cannot audit anything here. What is checked
instead, and exactly:

1. Pins (offline): every distribution installed in the virtual environment, except this
   repository's own editable parts, is pinned (constraints.txt, requirements-models.txt) at the
   installed version. A difference is reported as DRIFT (a package installed by hand, one pip
   did not upgrade); it does not fail the audit, since the advisories below are of the pins.
2. Advisories (PyPI's project JSON, the same OSV-fed data pip-audit's PyPI service reads): for
   every pin, `https://pypi.org/pypi/<name>/json`. Its `vulnerabilities` are those of the
   project's latest release: for a pin that *is* the latest release (most of them) that is the
   exact answer, and any advisory not withdrawn fails the audit. A pin behind the latest release
   is listed as such: PyPI gives no advisories for older releases through that route, so it is
   reported, not judged (upgrading it to the latest brings it under check 2).
3. Offline: every answer is cached in $HOPCAST_STATE_DIR/audit/pypi/<name>.json; without a
   network the cache (up to --max-age-days old) is used and the report says so. A pin with
   neither an answer nor a cache is reported as not audited and fails the audit under --strict.

When pip-audit is installed and its service is reachable (`--pip-audit`), it runs instead of 2.
Exit status: 0 clean, 1 a pin with a known vulnerability (or, with --strict, a pin not audited).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{name}/json"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def own_parts() -> set[str]:
    """This repository's editable distributions (hopcast-*): not on PyPI, not audited there."""
    names = set()
    for pyproject in [
        ROOT / "shared/pyproject.toml",
        ROOT / "deploy/local/pyproject.toml",
        *ROOT.glob("services/*/pyproject.toml"),
    ]:
        m = re.search(r'^name\s*=\s*"([^"]+)"', pyproject.read_text(), re.M)
        if m:
            names.add(canonical(m.group(1)))
    return names


def check_environment(pins: dict[str, str]) -> list[str]:
    """Installed distributions that are not pinned, or not at their pin."""
    ours = own_parts()
    drift = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if not name or name in ours or name == "pip":
            continue
        if name not in pins:
            drift.append(f"{name} {dist.version} is installed but not pinned in constraints.txt")
        elif pins[name] != dist.version:
            drift.append(f"{name} {dist.version} is installed, constraints.txt pins {pins[name]}")
    return sorted(drift)


@dataclass
class Answer:
    name: str
    pinned: str
    latest: str | None = None
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    source: str = "none"  # "pypi", "cache (N days)", "none"
    error: str | None = None


def fetch(name: str, cache: Path, max_age_days: float, timeout: float) -> tuple[dict[str, Any] | None, str, str | None]:
    path = cache / f"{name}.json"
    try:
        with urllib.request.urlopen(PYPI.format(name=name), timeout=timeout) as response:  # noqa: S310 (fixed https URL)
            body = json.load(response)
        slim = {"info": {"version": body["info"]["version"]}, "vulnerabilities": body.get("vulnerabilities") or []}
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


def audit_pypi(pins: dict[str, str], skip: set[str], cache: Path, max_age_days: float, timeout: float) -> list[Answer]:
    def one(item: tuple[str, str]) -> Answer:
        name, version = item
        body, source, error = fetch(name, cache, max_age_days, timeout)
        answer = Answer(name, version, source=source, error=error)
        if body is not None:
            answer.latest = body["info"]["version"]
            answer.vulnerabilities = [v for v in body["vulnerabilities"] if not v.get("withdrawn")]
        return answer

    todo = sorted((n, v) for n, v in pins.items() if n not in skip)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, todo))


def run_pip_audit(constraints: Path) -> int | None:
    """pip-audit over the pins, when it is installed and audits every one; None otherwise."""
    exe = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if exe is None:
        return None
    result = subprocess.run(
        [exe, "-r", str(constraints), "--no-deps", "--disable-pip", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return None
    deps = report.get("dependencies", [])
    if not deps or any("skip_reason" in d for d in deps):
        print(f"pip-audit could not audit {sum('skip_reason' in d for d in deps)} of {len(deps)} pins; not used")
        return None
    vulnerable = [d for d in deps if d.get("vulns")]
    for d in vulnerable:
        print(f"VULNERABLE {d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}")
    print(f"pip-audit: {len(deps)} pins audited, {len(vulnerable)} vulnerable")
    return 1 if vulnerable else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--models", type=Path, default=ROOT / "requirements-models.txt")
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("HOPCAST_STATE_DIR", ROOT / ".state")) / "audit" / "pypi"
    )
    parser.add_argument("--max-age-days", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--strict", action="store_true", help="fail when a pin could not be audited at all")
    parser.add_argument("--pip-audit", action="store_true", help="use pip-audit when it is installed and works")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    pins = read_pins(args.constraints) | read_pins(args.models)
    status = 0
    drift = check_environment(pins)
    for line in drift:
        print(f"DRIFT {line}")
    print(f"pins: {len(pins)}; the environment {'matches them' if not drift else 'drifts from them (not judged)'}")

    if args.pip_audit:
        verdict = run_pip_audit(args.constraints)
        if verdict is not None:
            return status | verdict

    answers = audit_pypi(pins, own_parts(), args.cache, args.max_age_days, args.timeout)
    exact = [a for a in answers if a.latest is not None and a.latest == a.pinned]
    behind = [a for a in answers if a.latest is not None and a.latest != a.pinned]
    missing = [a for a in answers if a.latest is None]
    vulnerable = [a for a in exact if a.vulnerabilities]
    for a in vulnerable:
        ids = ", ".join(f"{v.get('id')} (fixed in {', '.join(v.get('fixed_in') or ['-'])})" for v in a.vulnerabilities)
        print(f"VULNERABLE {a.name} {a.pinned}: {ids}")
    for a in behind:
        advisories = f"; {len(a.vulnerabilities)} advisories against {a.latest}" if a.vulnerabilities else ""
        print(f"BEHIND {a.name} {a.pinned} (latest {a.latest}): not judged{advisories}")
    for a in missing:
        print(f"NOT AUDITED {a.name} {a.pinned}: {a.error}")
    cached = [a for a in answers if a.source.startswith("cache")]
    print(
        f"advisories: {len(exact)} pins are their latest release and were checked, {len(vulnerable)} vulnerable; "
        f"{len(behind)} behind the latest release (not judged); {len(missing)} not audited"
        + (f"; {len(cached)} answers from the offline cache" if cached else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "drift": drift,
                    "checked": [a.name for a in exact],
                    "vulnerable": {a.name: a.vulnerabilities for a in vulnerable},
                    "behind": {a.name: [a.pinned, a.latest] for a in behind},
                    "not_audited": {a.name: a.error for a in missing},
                    "cached": [a.name for a in cached],
                },
                indent=2,
            )
        )
    status |= bool(vulnerable)
    status |= bool(args.strict and missing)
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
