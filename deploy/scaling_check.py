"""Scaling that fits Kafka (`make deploy-check`), on each rendered overlay:

- a Deployment an autoscaler targets sets no `spec.replicas` (every apply would reset the
  autoscaler's choice to it);
- no autoscaler's `maxReplicas` is above the topics' partition count (`KAFKA_PARTITIONS` of the
  rendered `hopcast-config`): a consumer beyond the partitions of its group's topics gets none
  and sits idle, so such a maximum only spends pods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def scaling_problems(docs: Sequence[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    configs = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("hopcast-config")]
    partitions = next(
        (int(c["data"]["KAFKA_PARTITIONS"]) for c in configs if "KAFKA_PARTITIONS" in c.get("data", {})), None
    )
    for hpa in (d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"):
        name = hpa["metadata"]["name"]
        target = hpa["spec"]["scaleTargetRef"]
        deployment = deployments.get(target["name"]) if target.get("kind") == "Deployment" else None
        if deployment is not None and "replicas" in deployment["spec"]:
            problems.append(
                f"Deployment/{target['name']} sets spec.replicas while HorizontalPodAutoscaler/{name} owns its scale"
            )
        if partitions is None:
            problems.append(f"HorizontalPodAutoscaler/{name}: no KAFKA_PARTITIONS in hopcast-config to bound it")
        elif hpa["spec"]["maxReplicas"] > partitions:
            problems.append(
                f"HorizontalPodAutoscaler/{name}: maxReplicas {hpa['spec']['maxReplicas']} is above the"
                f" {partitions} partitions (KAFKA_PARTITIONS): the extra consumers would sit idle"
            )
    return problems
