"""Generate the secrets docker compose mounts (deploy/compose/secrets/, git-ignored, mode 0600):
a random password per Kafka principal (hopcast_shared.acls.PRINCIPALS, and `broker`, the
broker's own identity), the broker's JAAS file and the admin's client properties (the broker's
healthcheck and the ACL job). Existing files are kept: run it again any time.

    .venv/bin/python deploy/compose/make_secrets.py
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from hopcast_shared.acls import PRINCIPALS

SECRETS = Path(__file__).resolve().parent / "secrets"
BROKER = "broker"


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def password_file(principal: str) -> Path:
    return SECRETS / f"kafka-{principal}-password"


def main() -> int:
    SECRETS.mkdir(mode=0o700, exist_ok=True)
    passwords = {}
    for principal in (*PRINCIPALS, BROKER):
        path = password_file(principal)
        if not path.exists():
            _write(path, secrets.token_urlsafe(24) + "\n")
        passwords[principal] = path.read_text().strip()
    broker = passwords[BROKER]
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    _write(
        SECRETS / "kafka-jaas.conf",
        f'KafkaServer {{\n  {scram} required username="{BROKER}" password="{broker}";\n}};\n'
        f'controller.KafkaServer {{\n  {plain} required username="{BROKER}" password="{broker}" '
        f'user_{BROKER}="{broker}";\n}};\n',
    )
    _write(
        SECRETS / "kafka-admin-client.properties",
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        f'sasl.jaas.config={scram} required username="admin" password="{passwords["admin"]}";\n',
    )
    print(f"compose secrets in {SECRETS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
