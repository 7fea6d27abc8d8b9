"""The JSON Schemas `make deploy-check` validates against, all offline: the compose-spec
(vendored by check-jsonschema), the Kubernetes schemas (strict, vendored by
kubernetes-validate), and an outline of the Strimzi and Prometheus-operator resources Hopcast
uses.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from kafka_acls_check import KAFKA_USER_SCHEMA
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.32.0"

LISTENER_TYPES = ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]
# Strimzi's CRDs are not vendored by any registry package: the outline of what Hopcast uses.
_STRIMZI_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": {"type": "object"}, "annotations": {"type": "object"}},
}
# A Strimzi resource that belongs to a cluster says which (the label the operators select on).
_CLUSTER_MEMBER_META = {
    **_STRIMZI_META,
    "required": ["name", "labels"],
    "properties": {**_STRIMZI_META["properties"], "labels": {"type": "object", "required": ["strimzi.io/cluster"]}},
}


def _custom_resource(
    api_version: str, spec: dict[str, Any], metadata: dict[str, Any] = _STRIMZI_META
) -> dict[str, Any]:
    """The outline of a custom resource: its apiVersion, its metadata, and `spec` (closed)."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "metadata": metadata,
            "spec": {"type": "object", **spec, "additionalProperties": False},
        },
    }


STRIMZI_SCHEMAS: dict[str, dict[str, Any]] = {
    "Kafka": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
            "metadata": _STRIMZI_META,
            "spec": {
                "type": "object",
                "required": ["kafka"],
                "properties": {
                    "kafka": {
                        "type": "object",
                        "required": ["listeners"],
                        "properties": {
                            "version": {"type": "string"},
                            "metadataVersion": {"type": "string"},
                            "listeners": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["name", "port", "type", "tls"],
                                    "properties": {
                                        "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
                                        "port": {"type": "integer", "minimum": 9092},
                                        "type": {"enum": LISTENER_TYPES},
                                        "tls": {"type": "boolean"},
                                    },
                                },
                            },
                            "config": {"type": "object"},
                        },
                    },
                    "entityOperator": {"type": "object"},
                    "kafkaExporter": {
                        "type": "object",
                        "properties": {"topicRegex": {"type": "string"}, "groupRegex": {"type": "string"}},
                    },
                },
            },
        },
    },
    "KafkaNodePool": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
            "metadata": _CLUSTER_MEMBER_META,
            "spec": {
                "type": "object",
                "required": ["replicas", "roles", "storage"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1},
                    "roles": {"type": "array", "minItems": 1, "items": {"enum": ["controller", "broker"]}},
                    "storage": {"type": "object", "required": ["type"]},
                    "resources": {"type": "object"},
                },
            },
        },
    },
}
STRIMZI_SCHEMAS["KafkaUser"] = KAFKA_USER_SCHEMA
STRIMZI_SCHEMAS["KafkaTopic"] = _custom_resource(
    "kafka.strimzi.io/v1beta2",
    {
        "required": ["partitions", "replicas"],
        "properties": {
            "topicName": {"type": "string"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]}},
        },
    },
    metadata={
        **_CLUSTER_MEMBER_META,
        "properties": {
            **_CLUSTER_MEMBER_META["properties"],
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        },
    },
)

# The Prometheus operator's CRDs are not vendored either: the outline of what Hopcast uses.
_ENDPOINT = {
    "type": "object",
    "required": ["port", "path"],
    "properties": {
        "port": {"type": "string"},
        "path": {"type": "string"},
        "interval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
        "relabelings": {"type": "array"},
    },
    "additionalProperties": False,
}


_KAFKA_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "properties": {
        "type": {"const": "kafka"},
        "metadata": {
            "type": "object",
            "required": ["bootstrapServers", "consumerGroup", "lagThreshold"],
            "additionalProperties": {"type": "string"},
        },
        "authenticationRef": {"type": "object", "required": ["name"]},
    },
    "additionalProperties": False,
}
# And KEDA's (the lag scaler of components/keda).
KEDA_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _custom_resource(
        "keda.sh/v1alpha1",
        {
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"]},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {"type": "array", "minItems": 1, "items": _KAFKA_TRIGGER},
            },
        },
    ),
    "TriggerAuthentication": _custom_resource(
        "keda.sh/v1alpha1",
        {
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": {"type": "string"},
                    },
                }
            }
        },
    ),
}
_RULE_GROUP = {
    "type": "object",
    "required": ["name", "rules"],
    "properties": {
        "name": {"type": "string"},
        "rules": {"type": "array", "items": {"type": "object", "required": ["alert", "expr", "labels", "annotations"]}},
    },
}
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "PodMonitor": _custom_resource(
        "monitoring.coreos.com/v1",
        {
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": {"type": "object", "required": ["matchLabels"]},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        },
    ),
    "PrometheusRule": _custom_resource(
        "monitoring.coreos.com/v1",
        {"required": ["groups"], "properties": {"groups": {"type": "array", "minItems": 1, "items": _RULE_GROUP}}},
    ),
}


@functools.cache
def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


def _k8s_schema_dir() -> Path:
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
    return Path(str(base))


@functools.cache
def _k8s_registry() -> Registry:  # type: ignore[type-arg]
    definitions = json.loads((_k8s_schema_dir() / "_definitions.json").read_text(encoding="utf-8"))
    return Resource.from_contents(definitions) @ Registry()  # type: ignore[no-any-return]


@functools.cache
def _k8s_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _k8s_schema_dir() / f"{kind.lower()}-{group_version}.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    registry = Resource.from_contents(schema) @ _k8s_registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """What is wrong with one Kubernetes resource against its schema (empty: valid)."""
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return ["no kind or apiVersion"]
    if kind in STRIMZI_SCHEMAS and api_version.startswith("kafka.strimzi.io/"):
        validator: jsonschema.protocols.Validator | None = jsonschema.Draft202012Validator(STRIMZI_SCHEMAS[kind])
    elif kind in MONITORING_SCHEMAS and api_version.startswith("monitoring.coreos.com/"):
        validator = jsonschema.Draft202012Validator(MONITORING_SCHEMAS[kind])
    elif kind in KEDA_SCHEMAS and api_version.startswith("keda.sh/"):
        validator = jsonschema.Draft202012Validator(KEDA_SCHEMAS[kind])
    else:
        validator = _k8s_validator(kind, api_version)
    if validator is None:
        return [f"no schema for {api_version} {kind} in Kubernetes {KUBERNETES_VERSION}"]
    return [describe(e) for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"
