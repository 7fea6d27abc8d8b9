"""Kafka principals and ACLs in deploy/, checked against the one table of who may do what
(hopcast_shared.acls, derived from the contract's topics and the services' interfaces):

- the Strimzi component: an authenticated listener (SCRAM-SHA-512), the simple authorizer, one
  `KafkaUser` per principal whose ACLs are exactly the table's (every service writes its topics
  and DLQ and reads what it consumes, with its own group; nothing more), and each workload
  connecting as its own user with the password from the Secret Strimzi makes (secretKeyRef);
- docker compose: the broker with SASL/SCRAM and the StandardAuthorizer, each service with its
  own user and its password from a mounted secret file, never a value in the environment.

`make deploy-check` calls `check_kafka_acls`; `python deploy/kafka_acls_check.py` prints the
KafkaUser resources of the table (what deploy/k8s/components/strimzi/users.yaml holds).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from hopcast_shared.acls import ADMIN_PRINCIPAL, PRINCIPALS, Acl, acl_table, admin_acls, by_principal

STRIMZI_CLUSTER = "hopcast-kafka"
# Strimzi's names of Kafka's operations and pattern types, and back.
_OPERATIONS = {
    "read": "Read",
    "write": "Write",
    "create": "Create",
    "describe": "Describe",
    "describe_configs": "DescribeConfigs",
    "alter": "Alter",
    "alter_configs": "AlterConfigs",
}
_PATTERNS = {"literal": "literal", "prefixed": "prefix"}
# Which principal each workload connects as (the topics Job creates topics: the admin).
WORKLOAD_PRINCIPALS = {
    "scheduler": "scheduler",
    "content": "content",
    "billing": "billing",
    "publisher": "publisher",
    "hopcast-topics": ADMIN_PRINCIPAL,
}

KAFKA_USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
                "annotations": {"type": "object"},
            },
        },
        "spec": {
            "type": "object",
            "required": ["authentication", "authorization"],
            "additionalProperties": False,
            "properties": {
                "authentication": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"enum": ["scram-sha-512", "tls", "tls-external"]}},
                },
                "authorization": {
                    "type": "object",
                    "required": ["type", "acls"],
                    "properties": {
                        "type": {"const": "simple"},
                        "acls": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["resource", "operations"],
                                "additionalProperties": False,
                                "properties": {
                                    "resource": {
                                        "type": "object",
                                        "required": ["type"],
                                        "properties": {
                                            "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                                            "name": {"type": "string"},
                                            "patternType": {"enum": ["literal", "prefix"]},
                                        },
                                    },
                                    "operations": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                    "host": {"type": "string"},
                                    "type": {"enum": ["allow", "deny"]},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


class Report(Protocol):
    checked: list[str]

    def fail(self, where: str, what: str) -> None: ...


def expected_acls() -> dict[str, set[Acl]]:
    """principal -> its ACLs where no one is a super user (the admin's included)."""
    table = by_principal([*acl_table(), *admin_acls()])
    return {principal: set(table.get(principal, [])) for principal in PRINCIPALS}


def kafka_user(principal: str, acls: Iterable[Acl]) -> dict[str, Any]:
    """A Strimzi KafkaUser for `principal`: SCRAM-SHA-512, its ACLs grouped by resource."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for acl in sorted(acls):
        grouped.setdefault((acl.resource, acl.name, acl.pattern), []).append(_OPERATIONS[acl.operation])
    rules = []
    for (resource, name, pattern), operations in grouped.items():
        described: dict[str, str] = {"type": resource}
        if resource != "cluster":
            described |= {"name": name, "patternType": _PATTERNS[pattern]}
        rules.append({"resource": described, "operations": operations, "host": "*"})
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {"name": principal, "labels": {"strimzi.io/cluster": STRIMZI_CLUSTER}},
        "spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": rules}},
    }


def acls_of(user: Mapping[str, Any]) -> set[Acl]:
    """The ACLs a KafkaUser grants, in the table's terms (unknown operations kept, to be reported)."""
    principal = user["metadata"]["name"]
    operations = {v: k for k, v in _OPERATIONS.items()}
    patterns = {v: k for k, v in _PATTERNS.items()}
    found = set()
    for rule in user["spec"].get("authorization", {}).get("acls", []):
        resource = rule["resource"]
        name = resource.get("name", "kafka-cluster") if resource["type"] != "cluster" else "kafka-cluster"
        pattern = patterns.get(resource.get("patternType", "literal"), resource.get("patternType", "?"))
        for operation in rule["operations"]:
            found.add(Acl(principal, resource["type"], name, operations.get(operation, operation), pattern))  # type: ignore[arg-type]
    return found


def _describe(acls: Iterable[Acl]) -> str:
    return ", ".join(f"{a.operation} {a.resource} {a.name}{'*' * (a.pattern == 'prefixed')}" for a in sorted(acls))


# --- compose: kafka-acls.sh arguments, one call per line ---------------------------------------------

COMPOSE_ACLS = Path(__file__).resolve().parent / "compose" / "kafka-acls.args"


def acl_lines(acls: Iterable[Acl]) -> list[str]:
    """kafka-acls.sh `--add` arguments: one line per principal, operation and pattern type (the
    tool grants every operation on every resource of a line)."""
    grouped: dict[tuple[str, str, str], list[Acl]] = {}
    for acl in sorted(acls):
        grouped.setdefault((acl.principal, acl.operation, acl.pattern), []).append(acl)
    lines = []
    for (principal, operation, pattern), rules in grouped.items():
        words = ["--allow-principal", f"User:{principal}", "--operation", _OPERATIONS[operation]]
        if pattern != "literal":
            words += ["--resource-pattern-type", pattern]
        for rule in rules:
            words += [f"--{rule.resource}", rule.name]
        lines.append(" ".join(words))
    return lines


def parse_acl_lines(text: str) -> set[Acl]:
    """The ACLs kafka-acls.sh would add from those lines (comments skipped)."""
    operations = {v: k for k, v in _OPERATIONS.items()}
    found: set[Acl] = set()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = line.split()
        pairs = list(zip(words[::2], words[1::2], strict=False))
        principal = next(v for k, v in pairs if k == "--allow-principal").removeprefix("User:")
        pattern = next((v for k, v in pairs if k == "--resource-pattern-type"), "literal")
        ops = [operations.get(v, v) for k, v in pairs if k == "--operation"]
        resources = [(k.removeprefix("--"), v) for k, v in pairs if k in ("--topic", "--group")]
        found |= {Acl(principal, r, n, op, pattern) for op in ops for r, n in resources}  # type: ignore[arg-type]
    return found


def check_strimzi(report: Report, overlay: str, docs: list[dict[str, Any]]) -> None:
    where = f"deploy/k8s/overlays/{overlay}"
    for config in (
        d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("hopcast-config")
    ):
        protocol = config.get("data", {}).get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
        if protocol != "SASL_SSL":
            report.fail(where, f"the services reach Kafka over {protocol}: SASL_SSL (authenticated, over TLS) wanted")
    kafkas = [d for d in docs if d.get("kind") == "Kafka"]
    if not kafkas:
        return  # Kafka is outside the cluster: its operator sets KAFKA_SASL_* in the Secrets
    for kafka in kafkas:
        spec = kafka["spec"]["kafka"]
        if spec.get("authorization", {}).get("type") != "simple":
            report.fail(where, "Kafka: spec.kafka.authorization.type must be simple (ACLs enforced)")
        for listener in spec.get("listeners", []):
            if listener.get("authentication", {}).get("type") != "scram-sha-512":
                report.fail(where, f"Kafka listener {listener.get('name')}: no scram-sha-512 authentication")
            if listener.get("tls") is not True:
                report.fail(where, f"Kafka listener {listener.get('name')}: not TLS (passwords in the clear)")
    users = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "KafkaUser"}
    for principal, wanted in expected_acls().items():
        if principal not in users:
            report.fail(where, f"no KafkaUser {principal}")
            continue
        granted = acls_of(users[principal])
        if granted - wanted:
            report.fail(where, f"KafkaUser {principal} grants more than its role: {_describe(granted - wanted)}")
        if wanted - granted:
            report.fail(where, f"KafkaUser {principal} lacks what its role needs: {_describe(wanted - granted)}")
    for extra in sorted(set(users) - set(PRINCIPALS)):
        report.fail(where, f"KafkaUser {extra} is no principal of hopcast_shared.acls")
    for doc in docs:
        principal = WORKLOAD_PRINCIPALS.get(doc["metadata"]["name"])
        if doc.get("kind") not in ("Deployment", "Job") or principal is None:
            continue
        for problem in _client_problems(doc, principal):
            report.fail(where, f"{doc['kind']} {doc['metadata']['name']}: {problem}")
    report.checked.append(f"{where}: KafkaUsers grant exactly the ACLs of the contract; workloads use their own")


def _client_problems(workload: dict[str, Any], principal: str) -> list[str]:
    env = {e["name"]: e for c in workload["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    problems = []
    if env.get("KAFKA_SASL_USERNAME", {}).get("value") != principal:
        problems.append(f"KAFKA_SASL_USERNAME is not {principal}")
    ref = env.get("KAFKA_SASL_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if (ref.get("name"), ref.get("key")) != (principal, "password"):
        problems.append(f"KAFKA_SASL_PASSWORD is not read from the Secret {principal} (key password)")
    return problems


def check_compose(report: Report, compose: dict[str, Any], acls_file: Path = COMPOSE_ACLS) -> None:
    where = "deploy/compose/compose.yaml"
    services = compose.get("services", {})
    broker = services.get("kafka", {}).get("environment", {})
    settings = {
        "KAFKA_AUTHORIZER_CLASS_NAME": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND": "false",
    }
    for key, value in settings.items():
        if str(broker.get(key)) != value:
            report.fail(where, f"kafka: {key} must be {value}")
    protocols = dict(p.split(":", 1) for p in str(broker.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "")).split(","))
    for listener in sorted(name for name, protocol in protocols.items() if not protocol.startswith("SASL_")):
        report.fail(where, f"kafka: listener {listener} is a listener without authentication ({protocols[listener]})")
    if str(broker.get("KAFKA_SUPER_USERS")) != "User:admin;User:broker":
        report.fail(where, "kafka: KAFKA_SUPER_USERS must be User:admin;User:broker alone")
    granted = parse_acl_lines(acls_file.read_text()) if acls_file.is_file() else set()
    wanted = set(acl_table())
    if granted != wanted:
        report.fail(
            where,
            f"{acls_file.name} differs from hopcast_shared.acls (python deploy/kafka_acls_check.py --compose): "
            f"extra {_describe(granted - wanted) or 'none'}; missing {_describe(wanted - granted) or 'none'}",
        )
    for name, principal in {**WORKLOAD_PRINCIPALS, "topics": ADMIN_PRINCIPAL}.items():
        service = services.get(name)
        if service is None or name == "hopcast-topics":
            continue
        env = service.get("environment", {})
        if env.get("KAFKA_SASL_USERNAME") != principal:
            report.fail(where, f"{name}: KAFKA_SASL_USERNAME is not {principal}")
        if "KAFKA_SASL_PASSWORD" in env:
            report.fail(where, f"{name}: KAFKA_SASL_PASSWORD in the environment (mount it as a secret)")
        secret = f"kafka-{principal}-password"
        if env.get("KAFKA_SASL_PASSWORD_FILE") != f"/run/secrets/{secret}" or secret not in service.get("secrets", []):
            report.fail(where, f"{name}: the password is not the mounted secret {secret}")
    report.checked.append(f"{where}: the broker authenticates and authorizes; each service is its own principal")


def check_kafka_acls(report: Report, rendered: Mapping[str, list[dict[str, Any]]], compose: dict[str, Any]) -> None:
    for overlay, docs in rendered.items():
        check_strimzi(report, overlay, docs)
    check_compose(report, compose)


if __name__ == "__main__":
    if sys.argv[1:] == ["--compose"]:
        header = "# Generated by `python deploy/kafka_acls_check.py --compose` from hopcast_shared.acls;"
        header += (
            " deploy-check compares.\n# kafka-acls.sh --add arguments, one call per line (admin is a super user).\n"
        )
        sys.stdout.write(header + "\n".join(acl_lines(acl_table())) + "\n")
    else:
        header = "# Generated by `python deploy/kafka_acls_check.py` from hopcast_shared.acls; deploy-check compares.\n"
        users = [kafka_user(p, acls) for p, acls in expected_acls().items()]
        sys.stdout.write(header + yaml.safe_dump_all(users, sort_keys=False))
