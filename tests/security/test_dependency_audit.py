"""The dependency audit (deploy/dependency_audit.py, `make audit`): what it judges and what it
only reports, offline from its cache (PyPI is pointed at a closed port here)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dependency_audit", ROOT / "deploy" / "dependency_audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cached(cache: Path, name: str, latest: str, vulnerabilities: list[dict[str, object]], age_days: float = 1) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    body = {
        "fetched_at": time.time() - age_days * 86400,
        "info": {"version": latest},
        "vulnerabilities": vulnerabilities,
    }
    (cache / f"{name}.json").write_text(json.dumps(body))


def test_offline_the_cache_decides_exact_pins_and_reports_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = load_audit()
    audit.PYPI = "http://127.0.0.1:9/pypi/{name}/json"  # nothing listens there: offline
    pins, models, cache = tmp_path / "constraints.txt", tmp_path / "models.txt", tmp_path / "cache"
    pins.write_text("leaky==1.0\nfresh==2.0\nbehind==1.0\nstale==1.0\n# comment\n")
    models.write_text("")
    advisory = {"id": "PYSEC-0000-1", "fixed_in": ["1.1"], "withdrawn": None}
    cached(cache, "leaky", "1.0", [advisory])
    cached(cache, "fresh", "2.0", [{"id": "GHSA-old", "withdrawn": "2020-01-01T00:00:00Z"}])
    cached(cache, "behind", "3.0", [])
    cached(cache, "stale", "1.0", [], age_days=90)

    args = ["--constraints", str(pins), "--models", str(models), "--cache", str(cache), "--timeout", "2"]
    assert audit.main([*args, "--json", str(tmp_path / "report.json")]) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE leaky 1.0: PYSEC-0000-1 (fixed in 1.1)" in out
    assert "BEHIND behind 1.0 (latest 3.0): not judged" in out
    assert "NOT AUDITED stale 1.0" in out and "cache is 90 days old" in out
    assert "2 pins are their latest release and were checked, 1 vulnerable" in out
    assert "answers from the offline cache" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["checked"] == ["fresh", "leaky"] and list(report["vulnerable"]) == ["leaky"]

    # Without the vulnerable pin it passes, unless --strict asks that every pin be audited.
    pins.write_text("fresh==2.0\nbehind==1.0\nstale==1.0\n")
    assert audit.main(args) == 0
    assert audit.main([*args, "--strict"]) == 1


def test_the_environment_is_compared_with_the_pins() -> None:
    audit = load_audit()
    pins = audit.read_pins(ROOT / "constraints.txt")
    assert pins["aiokafka"] and pins["asyncpg"]
    drift = audit.check_environment({**pins, "pytest": "0.0.1"})
    assert any(line.startswith("pytest ") and "pins 0.0.1" in line for line in drift)
    assert not any(line.startswith("hopcast") for line in drift)
