"""The dependency audit (deploy/dependency_audit.py, `make audit`): a verdict on every pin, offline
from its cache (PyPI is pointed at a closed port here)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dependency_audit", ROOT / "deploy" / "dependency_audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    module.PYPI = "http://127.0.0.1:9/pypi/{name}/json"  # nothing listens there: offline
    return module


def cached(
    cache: Path,
    name: str,
    pinned: str,
    latest: str,
    vulnerabilities: list[dict[str, Any]] | None = None,
    *,
    age_days: float = 1,
    yanked: str | None = None,
    latest_needs: str | None = None,
    latest_uploaded: str | None = None,
) -> None:
    """The slim project JSON the audit caches: the latest, its advisories, every release."""
    cache.mkdir(parents=True, exist_ok=True)
    files = [{"filename": f"{name}-{pinned}.tar.gz", "sha256": "0" * 64, "yanked": yanked is not None}]
    if yanked:
        files[0]["yanked_reason"] = yanked
    body = {
        "fetched_at": time.time() - age_days * 86400,
        "info": {"version": latest},
        "vulnerabilities": vulnerabilities or [],
        "versions": {
            pinned: {"requires_python": ">=3.9", "yanked": yanked is not None},
            latest: {"requires_python": latest_needs or ">=3.9", "yanked": False, "uploaded": latest_uploaded},
        },
        "releases": {pinned: files},
    }
    (cache / f"{name}.json").write_text(json.dumps(body))


@pytest.fixture
def world(tmp_path: Path) -> tuple[ModuleType, Path, list[str]]:
    audit = load_audit()
    cache = tmp_path / "cache"
    (tmp_path / "models.txt").write_text("")
    (tmp_path / "allow.toml").write_text("")
    args = [
        *("--constraints", str(tmp_path / "constraints.txt"), "--models", str(tmp_path / "models.txt")),
        *("--cache", str(cache), "--allowlist", str(tmp_path / "allow.toml"), "--timeout", "2"),
        *("--today", "2026-12-06"),
    ]
    return audit, tmp_path, args


def test_every_pin_gets_a_verdict_and_only_current_or_held_ones_pass(
    world: tuple[ModuleType, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    audit, tmp, args = world
    cache = tmp / "cache"
    (tmp / "constraints.txt").write_text(
        "leaky==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\nfresh==2.0\nbehind==1.0\npulled==1.0\nstale==1.0\n# x\n"
    )
    advisory = {"id": "PYSEC-0000-1", "fixed_in": ["1.1"], "withdrawn": None}
    cached(cache, "leaky", "1.0", "1.0", [advisory])
    cached(cache, "fresh", "2.0", "2.0", [{"id": "GHSA-old", "withdrawn": "2020-01-01T00:00:00Z"}])
    cached(cache, "behind", "1.0", "3.0", [{"id": "GHSA-new", "fixed_in": ["3.1"]}])
    cached(cache, "pulled", "1.0", "1.0", yanked="broken metadata")
    cached(cache, "stale", "1.0", "1.0", age_days=90)

    assert audit.main([*args, "--json", str(tmp / "report.json")]) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE leaky 1.0: PYSEC-0000-1 (fixed in 1.1)" in out
    assert "BEHIND behind 1.0: latest 3.0; advisories against 3.0: GHSA-new (fixed in 3.1): not judged" in out
    assert "YANKED pulled 1.0: the release was yanked from PyPI (reason: broken metadata)" in out
    assert "NOT AUDITED stale 1.0" in out and "cache is 90 days old" in out
    assert "1 vulnerable, 1 yanked, 1 behind, 1 not audited, 0 cooling, 0 held, 1 current" in out
    assert "answers from the offline cache" in out
    verdicts = {name: v["verdict"] for name, v in json.loads((tmp / "report.json").read_text())["verdicts"].items()}
    assert verdicts == {
        "leaky": "VULNERABLE",
        "fresh": "CURRENT",
        "behind": "BEHIND",
        "pulled": "YANKED",
        "stale": "NOT AUDITED",
    }

    # Current pins pass; one that could not be audited fails only under --strict.
    (tmp / "constraints.txt").write_text("fresh==2.0\nstale==1.0\n")
    assert audit.main(args) == 0
    assert audit.main([*args, "--strict"]) == 1


def test_a_pin_behind_passes_only_while_held_at_its_version_and_date(
    world: tuple[ModuleType, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    audit, tmp, args = world
    (tmp / "constraints.txt").write_text("numpy==2.4.6\n")
    cached(tmp / "cache", "numpy", "2.4.6", "2.5.5", latest_needs=">=3.12")
    allow = tmp / "allow.toml"

    assert audit.main(args) == 1
    assert "BEHIND numpy 2.4.6: latest 2.5.5, which needs a newer Python than 3.11" in capsys.readouterr().out

    allow.write_text('[[held]]\nname = "numpy"\nversion = "2.4.6"\nwhy = "2.5 needs 3.12"\nuntil = 2027-03-31\n')
    assert audit.main(args) == 0
    out = capsys.readouterr().out
    assert "HELD numpy 2.4.6: latest 2.5.5" in out and "held until 2027-03-31: 2.5 needs 3.12" in out

    # Past its date the allowance no longer holds.
    assert audit.main([*args[:-1], "2027-04-01"]) == 1
    assert "its allowance expired on 2027-03-31" in capsys.readouterr().out

    # An entry for another version, or one without a why, does not hold it.
    allow.write_text('[[held]]\nname = "numpy"\nversion = "2.4.5"\nwhy = "x"\nuntil = 2027-03-31\n')
    assert audit.main(args) == 1
    assert "STALE numpy is held at 2.4.5 but pinned at 2.4.6" in capsys.readouterr().out
    allow.write_text('[[held]]\nname = "numpy"\nversion = "2.4.6"\nwhy = ""\nuntil = 2027-03-31\n')
    assert audit.main(args) == 1
    assert "ALLOWLIST allow.toml entry 1: needs name, version and a why" in capsys.readouterr().out


def test_a_pin_behind_a_release_out_for_less_than_two_weeks_is_cooling(
    world: tuple[ModuleType, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    audit, tmp, args = world  # today is 2026-12-06
    (tmp / "constraints.txt").write_text("fresh==1.0\n")
    cached(tmp / "cache", "fresh", "1.0", "1.1", latest_uploaded="2026-11-25T10:00:00Z")
    assert audit.main(args) == 0
    assert "COOLING fresh 1.0: latest 1.1; out since 2026-11-25, 3 days left to adopt it" in capsys.readouterr().out

    # Out for longer than that, it fails; so does a newer release with an advisory, at once.
    cached(tmp / "cache", "fresh", "1.0", "1.1", latest_uploaded="2026-11-20T10:00:00Z")
    assert audit.main(args) == 1
    assert "BEHIND fresh 1.0: latest 1.1" in capsys.readouterr().out
    advisory = [{"id": "GHSA-xxxx", "fixed_in": ["1.1"]}]
    cached(tmp / "cache", "fresh", "1.0", "1.1", advisory, latest_uploaded="2026-12-05T10:00:00Z")
    assert audit.main(args) == 1
    assert "BEHIND fresh 1.0: latest 1.1; advisories against 1.1: GHSA-xxxx" in capsys.readouterr().out
    # An answer that does not say when the release came out is judged as before.
    cached(tmp / "cache", "fresh", "1.0", "1.1")
    assert audit.main(args) == 1


def test_an_allowance_for_a_pin_that_caught_up_is_stale(
    world: tuple[ModuleType, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    audit, tmp, args = world
    (tmp / "constraints.txt").write_text("ruff==0.17.6\n")
    cached(tmp / "cache", "ruff", "0.17.6", "0.17.6")
    (tmp / "allow.toml").write_text('[[held]]\nname = "ruff"\nversion = "0.17.6"\nwhy = "x"\nuntil = 2027-01-01\n')
    assert audit.main(args) == 1
    assert "STALE ruff 0.17.6 is held but is no longer behind" in capsys.readouterr().out


def test_the_repositorys_allowlist_is_well_formed_and_every_entry_has_a_reason() -> None:
    audit = load_audit()
    held, problems = audit.read_allowlist(ROOT / "deploy" / "audit-allowlist.toml")
    assert problems == []
    pins = audit.read_pins(ROOT / "constraints.txt") | audit.read_pins(ROOT / "requirements-models.txt")
    for name, entry in held.items():
        assert pins.get(name) == entry.version, f"{name} is held at {entry.version}, pinned at {pins.get(name)}"
        assert len(entry.why) > 20


def test_the_environment_is_compared_with_the_pins() -> None:
    audit = load_audit()
    pins = audit.read_pins(ROOT / "constraints.txt")
    assert pins["aiokafka"] and pins["asyncpg"] and "\\" not in pins["aiokafka"]
    drift = audit.check_environment({**pins, "pytest": "0.0.1"})
    assert any(line.startswith("pytest ") and "pins 0.0.1" in line for line in drift)
    assert not any(line.startswith("hopcast") for line in drift)
