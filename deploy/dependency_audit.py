"""Dependency audit (`make audit`, part of `make test`): a verdict on every pin, and the environment
held to the pins.

Where advisories can come from here. pip-audit asks PyPI's per-version JSON
(`https://pypi.org/pypi/<name>/<version>/json`) or OSV's API; from this machine (and CI, on the
same network) the first answers 404 and the second is not reachable, and no package registry
reachable here ships an advisory database for older releases (PyPI's `safety-db` stopped in 2021;
npm's `osv-offline` packages fetch their data at run time). What is reachable is PyPI's project
JSON, `https://pypi.org/pypi/<name>/json`: its `vulnerabilities` (OSV-fed, what pip-audit's PyPI
service reads) are those of the project's latest release only, and its `releases` map says for
every release whether it was yanked and which Python it needs.

So a pin is trusted only where the advisories speak of it, and every pin of constraints.txt and
requirements-models.txt gets one verdict:

- CURRENT (passes): the pin is PyPI's latest release and has no advisory (withdrawn ones aside).
- VULNERABLE (fails): the pin is PyPI's latest release and has an advisory.
- YANKED (fails): the pinned release was yanked from PyPI (the reason is shown).
- COOLING (passes): a newer release exists, the first of them came out at most COOLING_DAYS (14)
  ago, and the latest has no advisory. Adopting a release only after it has been public for a
  while is a supply-chain defence of its own (a hijacked release is usually found and yanked
  within days), and it keeps CI from failing the day a dependency releases.
- BEHIND (fails): a newer release has existed for longer, so nothing reachable says whether the
  pin has advisories.
  Upgrade it (`python deploy/pins.py --upgrade NAME`, then the tests), or hold it back in
  deploy/audit-allowlist.toml with why and until when, which makes it
- HELD (passes): behind, listed in the allowlist at exactly this version, before its `until` date.
  An expired entry leaves the pin BEHIND; an entry that matches no behind pin (the pin moved or is
  current) is STALE and fails, so the list does not outlive its reasons.
- NOT AUDITED: neither PyPI nor the cache answered; fails under --strict.

A pin whose newer releases all need a newer Python than 3.11 is still BEHIND: PyPI's advisories
are those of that newer release, not of ours; the report says so, and the allowlist says why.
Advisories against a newer release are shown with a behind pin: they likely concern it too.

The environment (offline): every distribution installed in the venv, except this repository's
editable parts, is pinned at its installed version; a difference is reported as DRIFT
(tests/security/test_pins.py fails on it).

Offline: every answer is cached in $HOPCAST_STATE_DIR/audit/pypi/<name>.json (`make pins` fills
the same cache); without a network the cache, up to --max-age-days old, decides, and the report
says so. Exit status: 0 when every pin is CURRENT or HELD, 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# deploy/ is no package: its scripts import each other by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pins as pin_files

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/pypi/{name}/json"
ALLOWLIST = ROOT / "deploy" / "audit-allowlist.toml"
canonical = pin_files.canonical


def read_pins(path: Path) -> dict[str, str]:
    return pin_files.read_pins(path)


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
        if not name or name in ours:
            continue
        if name not in pins:
            drift.append(f"{name} {dist.version} is installed but not pinned in constraints.txt")
        elif pins[name] != dist.version:
            drift.append(f"{name} {dist.version} is installed, constraints.txt pins {pins[name]}")
    return sorted(drift)


@dataclass
class Held:
    name: str
    version: str
    why: str
    until: datetime.date


def read_allowlist(path: Path) -> tuple[dict[str, Held], list[str]]:
    """The pins held back on purpose, by canonical name; and what is wrong with the file."""
    if not path.exists():
        return {}, []
    held: dict[str, Held] = {}
    problems: list[str] = []
    for i, entry in enumerate(tomllib.loads(path.read_text()).get("held", []), start=1):
        name, version, why, until = (entry.get(k) for k in ("name", "version", "why", "until"))
        if not (isinstance(name, str) and isinstance(version, str) and isinstance(why, str) and why.strip()):
            problems.append(f"{path.name} entry {i}: needs name, version and a why")
            continue
        if not isinstance(until, datetime.date) or isinstance(until, datetime.datetime):
            problems.append(f"{path.name} entry {i} ({name}): `until` must be a date such as 2027-01-31")
            continue
        held[canonical(name)] = Held(name, version, why.strip(), until)
    return held, problems


@dataclass
class Answer:
    name: str
    pinned: str
    latest: str | None = None
    newest_for_python: str | None = None
    behind_since: datetime.date | None = None  # the day the first newer release came out
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    yanked: str | None = None  # the reason, when the pinned release is yanked
    source: str = "none"  # "pypi", "cache (N days)", "none"
    error: str | None = None
    verdict: str = "NOT AUDITED"
    detail: str = ""


def audit_pypi(pins: dict[str, str], cache: Path, max_age_days: float, timeout: float) -> list[Answer]:
    def one(item: tuple[str, str]) -> Answer:
        name, version = item
        body, source, error = pin_files.fetch_project(name, {version}, cache, max_age_days, timeout, url=PYPI)
        answer = Answer(name, version, source=source, error=error)
        if body is not None:
            answer.latest = body["info"]["version"]
            answer.newest_for_python = pin_files.newest_for_python(body)
            answer.behind_since = pin_files.behind_since(body, version)
            answer.vulnerabilities = [v for v in body.get("vulnerabilities") or [] if not v.get("withdrawn")]
            files = (body.get("releases") or {}).get(version) or []
            release = (body.get("versions") or {}).get(version) or {}
            if release.get("yanked") or (files and all(f.get("yanked") for f in files)):
                answer.yanked = next((f.get("yanked_reason") for f in files if f.get("yanked_reason")), None) or "-"
        return answer

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, sorted(pins.items())))


def _advisories(vulnerabilities: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v.get('id')} (fixed in {', '.join(v.get('fixed_in') or ['-'])})" for v in vulnerabilities)


def judge(answers: list[Answer], held: dict[str, Held], today: datetime.date) -> list[str]:
    """Give each answer its verdict; the allowlist entries that match no behind pin."""
    used: set[str] = set()
    for a in answers:
        if a.latest is None:
            a.verdict, a.detail = "NOT AUDITED", a.error or "no answer"
        elif a.yanked is not None:
            a.verdict, a.detail = "YANKED", f"the release was yanked from PyPI (reason: {a.yanked})"
        elif a.latest == a.pinned:
            if a.vulnerabilities:
                a.verdict, a.detail = "VULNERABLE", _advisories(a.vulnerabilities)
            else:
                a.verdict, a.detail = "CURRENT", "no advisory"
        else:
            why = f"latest {a.latest}"
            if a.newest_for_python == a.pinned:
                why += f", which needs a newer Python than {pin_files.PYTHON}"
            elif a.newest_for_python and a.newest_for_python != a.latest:
                why += f"; {a.newest_for_python} is the newest for Python {pin_files.PYTHON}"
            if a.vulnerabilities:
                why += f"; advisories against {a.latest}: {_advisories(a.vulnerabilities)}"
            entry = held.get(a.name)
            if entry is not None and entry.version == a.pinned:
                used.add(a.name)
                if today <= entry.until:
                    a.verdict, a.detail = "HELD", f"{why}; held until {entry.until}: {entry.why}"
                    continue
                why += f"; its allowance expired on {entry.until}"
            behind_days = (today - a.behind_since).days if a.behind_since is not None else None
            if behind_days is not None and behind_days <= COOLING_DAYS and not a.vulnerabilities:
                a.verdict = "COOLING"
                a.detail = f"{why}; out since {a.behind_since}, {COOLING_DAYS - behind_days} days left to adopt it"
                continue
            a.verdict, a.detail = "BEHIND", f"{why}: not judged (upgrade it, or hold it in {ALLOWLIST.name})"
    pinned = {a.name: a.pinned for a in answers}
    stale = []
    for name, entry in sorted(held.items()):
        if name in used:
            continue
        if name not in pinned:
            stale.append(f"{entry.name} is held at {entry.version} but is not pinned")
        elif pinned[name] != entry.version:
            stale.append(f"{entry.name} is held at {entry.version} but pinned at {pinned[name]}")
        else:
            stale.append(f"{entry.name} {entry.version} is held but is no longer behind")
    return stale


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


VERDICTS = ("VULNERABLE", "YANKED", "BEHIND", "NOT AUDITED", "COOLING", "HELD", "CURRENT")
# How long a pin may stay behind a newer release (that has no advisory) before the audit fails it.
COOLING_DAYS = 14


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--models", type=Path, default=ROOT / "requirements-models.txt")
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("HOPCAST_STATE_DIR", ROOT / ".state")) / "audit" / "pypi"
    )
    parser.add_argument("--max-age-days", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--today", type=datetime.date.fromisoformat, default=datetime.date.today())
    parser.add_argument("--strict", action="store_true", help="fail when a pin could not be audited at all")
    parser.add_argument("--pip-audit", action="store_true", help="use pip-audit when it is installed and works")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    pins = read_pins(args.constraints) | read_pins(args.models)
    drift = check_environment(pins)
    for line in drift:
        print(f"DRIFT {line}")
    print(f"pins: {len(pins)}; the environment {'matches them' if not drift else 'drifts from them'}")

    if args.pip_audit:
        exit_status = run_pip_audit(args.constraints)
        if exit_status is not None:
            return exit_status

    held, problems = read_allowlist(args.allowlist)
    answers = audit_pypi(pins, args.cache, args.max_age_days, args.timeout)
    stale = judge(answers, held, args.today)
    for verdict in VERDICTS[:5]:
        for a in answers:
            if a.verdict == verdict:
                print(f"{verdict} {a.name} {a.pinned}: {a.detail}")
    for a in answers:
        if a.verdict == "HELD":
            print(f"HELD {a.name} {a.pinned}: {a.detail}")
    for line in problems + stale:
        print(f"STALE {line}" if line in stale else f"ALLOWLIST {line}")
    counts = {v: sum(a.verdict == v for a in answers) for v in VERDICTS}
    cached = [a for a in answers if a.source.startswith("cache")]
    print(
        "verdicts: "
        + ", ".join(f"{n} {v.lower()}" for v, n in counts.items())
        + (f"; {len(stale)} stale allowlist entries" if stale else "")
        + (f"; {len(cached)} answers from the offline cache" if cached else "")
    )
    if args.json:
        report = {
            "drift": drift,
            "verdicts": {a.name: {"verdict": a.verdict, "pinned": a.pinned, "detail": a.detail} for a in answers},
            "vulnerable": {a.name: a.vulnerabilities for a in answers if a.verdict == "VULNERABLE"},
            "stale_allowlist": stale,
            "cached": [a.name for a in cached],
        }
        args.json.write_text(json.dumps(report, indent=2))
    failed = counts["VULNERABLE"] + counts["YANKED"] + counts["BEHIND"] + len(stale) + len(problems)
    failed += counts["NOT AUDITED"] if args.strict else 0
    return int(bool(failed))


if __name__ == "__main__":
    sys.exit(main())
