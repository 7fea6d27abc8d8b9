"""The contract's topics as Strimzi `KafkaTopic` resources (deploy/k8s/components/strimzi/
topics.yaml), made from `hopcast_shared.topics.topic_specs` so they cannot drift from the
contract: `make manifests` writes them, `make deploy-check` fails when the file differs.

They carry the base's layout (KAFKA_PARTITIONS 6, replication 3, so min.insync.replicas 2);
an overlay patches them as it patches the cluster (dev: one broker). With the component,
Strimzi's topic operator creates and keeps them, and the topics Job is left out.
"""

from __future__ import annotations

from typing import Any

import yaml
from pinned_tools import ROOT

from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import topic_specs

TOPICS_FILE = ROOT / "deploy" / "k8s" / "components" / "strimzi" / "topics.yaml"
CLUSTER = "hopcast-kafka"
# Built without reading KAFKA_* from the environment (as KafkaSettings(...) would), so that the
# file `make manifests` writes does not depend on the shell it runs in.
BASE_LAYOUT = KafkaSettings.model_construct(partitions=6, replication_factor=3)


def kafka_topics(kafka: KafkaSettings = BASE_LAYOUT) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {"name": spec.name, "labels": {"strimzi.io/cluster": CLUSTER}},
            "spec": {
                "topicName": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication_factor,
                "config": dict(spec.config),
            },
        }
        for spec in topic_specs(kafka)
    ]


def kafka_topics_text() -> str:
    header = "# Written by `make manifests` from the contract (hopcast_shared.topics): do not edit.\n"
    return header + yaml.safe_dump_all(kafka_topics(), sort_keys=False)
