"""`make manifests`: write the manifests made from a source of their own, which `make
deploy-check` holds equal to it: the PrometheusRule from deploy/observability/alerts.yaml
(alerts_check.py) and the Strimzi KafkaTopics from the contract (kafka_topics.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from alerts_check import PROMETHEUS_RULE, prometheus_rule_text
from kafka_topics import TOPICS_FILE, kafka_topics_text
from pinned_tools import ROOT

GENERATED: dict[Path, Callable[[], str]] = {PROMETHEUS_RULE: prometheus_rule_text, TOPICS_FILE: kafka_topics_text}


class Reporter(Protocol):
    checked: list[str]

    def fail(self, where: str, what: str) -> None: ...


def check_generated(report: Reporter) -> None:
    for path, make in GENERATED.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != make():
            report.fail(str(path.relative_to(ROOT)), "differs from its source: run `make manifests`")
    report.checked.append("generated manifests (PrometheusRule, KafkaTopics) equal their sources")


def main() -> int:
    for path, make in GENERATED.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make(), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
