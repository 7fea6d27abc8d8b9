"""Alerts as code (`make deploy-check`): deploy/observability/alerts.yaml checked and unit-tested
by Prometheus's own rule tester, its metrics held to what the services export, and the
Kubernetes PrometheusRule made from it (`make manifests` writes it; manifests.py holds it equal).

promtool is a pinned build: Debian's `prometheus` package (VERSION below), fetched once with
`apt-get download`, checked against its SHA-256, unpacked with `dpkg-deb`, kept in .state/tools.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, Protocol

import yaml
from pinned_tools import ROOT, tools_dir

ALERTS = ROOT / "deploy" / "observability" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "observability" / "alerts.test.yaml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "observability" / "prometheus.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"

PROMETHEUS_DEB_VERSION = "2.42.0+ds-5+deb12u1"
PROMETHEUS_DEB_SHA256 = "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"
# Metrics the rules read that Hopcast does not export: the Kafka exporter's.
EXPORTER_METRICS = re.compile(r"^kafka_")


class Reporter(Protocol):
    checked: list[str]

    def fail(self, where: str, what: str) -> None: ...


def ensure_promtool() -> Path:
    """The pinned promtool, unpacked once from Debian's package and verified."""
    target = tools_dir() / f"promtool-{PROMETHEUS_DEB_VERSION}" / "promtool"
    if target.exists():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SystemExit("deploy-check needs apt-get and dpkg-deb (Debian) to fetch promtool once")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["apt-get", "download", f"prometheus={PROMETHEUS_DEB_VERSION}"],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (deb,) = Path(tmp).glob("prometheus_*.deb")
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest != PROMETHEUS_DEB_SHA256:
            raise RuntimeError(f"{deb.name}: SHA-256 {digest} is not the pinned {PROMETHEUS_DEB_SHA256}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        shutil.copyfile(Path(tmp) / "x" / "usr" / "bin" / "promtool", partial)
        partial.chmod(0o755)
        partial.replace(target)
    return target


def prometheus_rule(alerts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The PrometheusRule (Prometheus operator) holding alerts.yaml's groups."""
    alerts = alerts if alerts is not None else yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hopcast", "labels": {"app.kubernetes.io/part-of": "hopcast"}},
        "spec": {"groups": alerts["groups"]},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the rules' expressions) as literal blocks, as they are written."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockDumper.add_representer(str, _text)


def prometheus_rule_text() -> str:
    header = "# Written by `make manifests` from deploy/observability/alerts.yaml: edit that file, not this one.\n"
    return header + yaml.dump(prometheus_rule(), Dumper=_BlockDumper, sort_keys=False, width=200)


def metric_names(alerts: dict[str, Any]) -> set[str]:
    """The metric names the rules' expressions read."""
    names: set[str] = set()
    for group in alerts["groups"]:
        for rule in group["rules"]:
            names.update(re.findall(r"\b((?:hopcast|kafka)_[a-z_]+)\b", rule["expr"]))
    return names


def check_alerts(report: Reporter, known_metrics: Collection[str], *, promtool: Path | None = None) -> None:
    where = str(ALERTS.relative_to(ROOT)) if ALERTS.is_relative_to(ROOT) else str(ALERTS)
    alerts = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for name in sorted(metric_names(alerts)):
        if not EXPORTER_METRICS.match(name) and name not in known_metrics:
            report.fail(where, f"{name} is not a metric the services export")
    for rule in (r for g in alerts["groups"] for r in g["rules"]):
        runbook = rule.get("annotations", {}).get("runbook")
        if not runbook or not (ROOT / runbook).is_file():
            report.fail(where, f"{rule['alert']}: its runbook {runbook!r} is not a page of docs/runbooks")
    promtool = promtool or ensure_promtool()
    for args, cwd in (
        (["check", "rules", ALERTS.name], ALERTS.parent),
        (["test", "rules", ALERT_TESTS.name], ALERTS.parent),
        # compose's Prometheus: its rule_files name alerts.yaml, mounted beside it.
        (["check", "config", PROMETHEUS_CONFIG.name], PROMETHEUS_CONFIG.parent),
    ):
        done = subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            report.fail(where, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}")
    rules = sum(len(g["rules"]) for g in alerts["groups"])
    report.checked.append(f"{where}: {rules} rules valid and unit-tested by promtool, each with a runbook")
