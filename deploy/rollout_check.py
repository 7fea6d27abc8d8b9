"""Scaling and rollout steps that fit (`make deploy-check`), on each rendered overlay:

- a Deployment an autoscaler targets sets no `spec.replicas` (every apply would reset the
  autoscaler's choice to it);
- no autoscaler's `maxReplicas` is above the topics' partition count (`KAFKA_PARTITIONS` of the
  rendered `hopcast-config`): a consumer beyond the partitions of its group's topics gets none
  and sits idle, so such a maximum only spends pods;
- each service's migrations run as a step of their own: a `migrate` init container running
  `hopcast migrate apply <service>`, the only container that reads the schema owner's Secret
  `<service>-migrations`, and the service told not to migrate (`<SERVICE>_MIGRATE_ON_START`
  false): not in the serving process, not inside its startup window;
- a Job (the topics step) is deleted once finished (`ttlSecondsAfterFinished` 0), so that
  applying a new image or config finds no immutable Job in its way;
- where the topics are KafkaTopics (Strimzi), they are the ones the services use: made without
  a prefix, so `KAFKA_TOPIC_PREFIX` must be empty there.
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
    # A KEDA ScaledObject makes and owns an HPA of its own: the same rules hold for it.
    scalers = [
        (d["kind"], d["metadata"]["name"], d["spec"]["scaleTargetRef"], d["spec"].get(field))
        for d in docs
        for kind, field in (("HorizontalPodAutoscaler", "maxReplicas"), ("ScaledObject", "maxReplicaCount"))
        if d.get("kind") == kind
    ]
    for kind, name, target, most in scalers:
        deployment = deployments.get(target["name"]) if target.get("kind", "Deployment") == "Deployment" else None
        if deployment is not None and "replicas" in deployment["spec"]:
            problems.append(f"Deployment/{target['name']} sets spec.replicas while {kind}/{name} owns its scale")
        if partitions is None:
            problems.append(f"{kind}/{name}: no KAFKA_PARTITIONS in hopcast-config to bound it")
        elif most is not None and most > partitions:
            problems.append(
                f"{kind}/{name}: at most {most} replicas, above the {partitions} partitions (KAFKA_PARTITIONS):"
                " the extra consumers would sit idle"
            )
    return problems


def migration_step_problems(docs: Sequence[dict[str, Any]], services: Sequence[str]) -> list[str]:
    problems: list[str] = []
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    for service in services:
        deployment = deployments.get(service)
        if deployment is None:
            continue
        pod = deployment["spec"]["template"]["spec"]
        owner_secret = f"{service}-migrations"
        migrate = [
            c for c in pod.get("initContainers", []) if c.get("command") == ["hopcast", "migrate", "apply", service]
        ]
        if not migrate:
            problems.append(f"Deployment/{service}: no init container runs `hopcast migrate apply {service}`")
        for container in pod.get("containers", []):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if env.get(f"{service.upper()}_MIGRATE_ON_START") != "false":
                problems.append(f"Deployment/{service} container {container['name']}: migrates at start")
            if _reads_secret(container, owner_secret) or f"{service.upper()}_MIGRATIONS_DATABASE_URL" in env:
                problems.append(f"Deployment/{service} container {container['name']}: reads the schema owner's URL")
    return problems


def _reads_secret(container: dict[str, Any], secret: str) -> bool:
    from_env = any(e.get("secretRef", {}).get("name") == secret for e in container.get("envFrom", []))
    from_key = any(
        e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == secret for e in container.get("env", [])
    )
    return from_env or from_key


def job_problems(docs: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"Job/{d['metadata']['name']}: ttlSecondsAfterFinished is not 0 (a re-apply would meet the finished,"
        " immutable Job)"
        for d in docs
        if d.get("kind") == "Job" and d["spec"].get("ttlSecondsAfterFinished") != 0
    ]


def topic_prefix_problems(docs: Sequence[dict[str, Any]]) -> list[str]:
    if not any(d.get("kind") == "KafkaTopic" for d in docs):
        return []
    return [
        f"ConfigMap/{d['metadata']['name']}: KAFKA_TOPIC_PREFIX is set, but the KafkaTopics have no prefix"
        " (the services would use topics nobody made)"
        for d in docs
        if d.get("kind") == "ConfigMap" and d.get("data", {}).get("KAFKA_TOPIC_PREFIX")
    ]
