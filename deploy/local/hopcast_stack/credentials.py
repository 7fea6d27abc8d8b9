"""The local broker's SASL/SCRAM credentials: one random password per principal of
`hopcast_shared.acls.PRINCIPALS`, plus `broker` (the broker's own identity, inter-broker and
towards its controller), generated once into a file of mode 0600 under the state folder and
never committed. `client_settings(kafka, principal)` is what a client of that principal sets.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from hopcast_shared.acls import PRINCIPALS
from hopcast_shared.settings import KafkaSettings
from hopcast_stack import procs

MECHANISM = "SCRAM-SHA-512"
BROKER_PRINCIPAL = "broker"
ALL_PRINCIPALS: tuple[str, ...] = (*PRINCIPALS, BROKER_PRINCIPAL)


@dataclass(frozen=True)
class Credentials:
    """principal -> password, kept in `path` (JSON, mode 0600)."""

    path: Path
    passwords: dict[str, str]

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """The passwords in `path`; any principal missing there gets a new one (written back)."""
        passwords: dict[str, str] = {}
        if path.is_file():
            passwords = json.loads(path.read_text())
        if any(p not in passwords for p in ALL_PRINCIPALS):
            path.parent.mkdir(parents=True, exist_ok=True)
            # Two processes of one state folder (`make up` and `make env`) must not make two sets.
            with procs.file_lock(path.with_suffix(".lock")):
                if path.is_file():
                    passwords = json.loads(path.read_text())
                missing = [p for p in ALL_PRINCIPALS if p not in passwords]
                if missing:
                    passwords.update({p: secrets.token_urlsafe(24) for p in missing})
                    tmp = path.with_suffix(".tmp")
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as handle:
                        json.dump(passwords, handle, indent=1, sort_keys=True)
                    tmp.replace(path)
        return cls(path, passwords)

    def password(self, principal: str) -> str:
        try:
            return self.passwords[principal]
        except KeyError:
            raise KeyError(f"no Kafka principal {principal!r}; known: {', '.join(sorted(self.passwords))}") from None

    def client_settings(self, kafka: KafkaSettings, principal: str) -> KafkaSettings:
        """`kafka` (bootstrap, prefix, layout) as `principal` authenticates: SASL/SCRAM-SHA-512."""
        return kafka.model_copy(
            update={
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": MECHANISM,
                "sasl_username": principal,
                "sasl_password": SecretStr(self.password(principal)),
            }
        )

    def scram_arguments(self) -> list[str]:
        """StorageTool `--add-scram` arguments: every SCRAM principal, bootstrapped at format time."""
        args: list[str] = []
        for principal in ALL_PRINCIPALS:
            args += ["--add-scram", f"{MECHANISM}=[name={principal},password={self.password(principal)}]"]
        return args
