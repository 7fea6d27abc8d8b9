"""Kafka SASL and TLS through configuration alone (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*,
KAFKA_SSL_*): a real broker with SASL_PLAINTEXT and SASL_SSL listeners (PLAIN; a certificate
made here, signed by a CA made here), billing run as a process over SASL_SSL (its consumer,
outbox producer and lag admin all connect through hopcast_shared.kafka), topics created over
SASL; a wrong password and an unknown CA are refused; half a configuration stops at start."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from hopcast_shared.contract.examples import example_event
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings, SettingsError, load
from hopcast_shared.topics import ensure_topics
from hopcast_stack import procs
from hopcast_stack.kafka import KafkaServer
from hopcast_stack.pytest_plugin import TestStack
from hopcast_stack.services import FAST_SERVICE_ENV, ServiceSet
from hopcast_stack.upstream import Upstream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

USER, PASSWORD = "hopcast", f"pw-{uuid.uuid4().hex}"


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 and localhost it signed: (ca.pem, server.pem
    holding the key and the chain, as Kafka's PEM key store reads it)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hopcast test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, server_file = folder / "ca.pem", folder / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, server_file


async def start_secure_broker(stack: TestStack, home: Path) -> tuple[KafkaServer, int, int]:
    """A broker with PLAINTEXT (the stack's readiness probe), SASL_PLAINTEXT and SASL_SSL listeners."""
    _, server_file = make_certificates(home / "tls")
    plain, sasl, sasl_ssl, controller = procs.free_ports(4)
    jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";'
    listeners = f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl}"
    server = KafkaServer(
        home=home / "kafka",
        port=plain,
        controller_port=controller,
        libs=stack.kafka.libs,
        logs_dir=home / "logs",
        run_dir=home / "run",
        heap_opts="-Xms128m -Xmx384m -XX:TieredStopAtLevel=1",
        ready_timeout_s=120,
        overrides={
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"{listeners},CONTROLLER://127.0.0.1:{controller}",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(server_file),
            "ssl.client.auth": "none",
        },
    )
    await server.start()
    return server, sasl, sasl_ssl


def settings(
    port: int, protocol: str, *, prefix: str, password: str = PASSWORD, ca: Path | None = None
) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        topic_prefix=prefix,
        partitions=1,
        security_protocol=protocol,  # type: ignore[arg-type]
        sasl_mechanism="PLAIN",
        sasl_username=USER,
        sasl_password=SecretStr(password),
        ssl_cafile=ca,
    )


async def refused(kafka: KafkaSettings) -> bool:
    producer = AIOKafkaProducer(request_timeout_ms=5000, **connection_kwargs(kafka))
    try:
        await asyncio.wait_for(producer.start(), 30)
    except Exception:
        return True
    finally:
        await producer.stop()
    return False


async def test_billing_runs_over_sasl_ssl_configured_by_the_environment_alone(stack: TestStack) -> None:
    home = stack.state_dir / f"kafka-secure-{uuid.uuid4().hex[:6]}"
    server, sasl_port, ssl_port = await start_secure_broker(stack, home)
    try:
        ca = home / "tls" / "ca.pem"
        prefix = f"s{uuid.uuid4().hex[:8]}."
        await ensure_topics(settings(sasl_port, "SASL_PLAINTEXT", prefix=prefix))  # the admin over SASL
        secure = settings(ssl_port, "SASL_SSL", prefix=prefix, ca=ca)

        services = ServiceSet(
            kafka=secure,
            database_urls={"billing": await stack.new_database("billing_sasl")},
            state_dir=home / "services",
            extra_env=FAST_SERVICE_ENV,
        )
        env = services.env()
        assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_USERNAME"], env["KAFKA_SSL_CAFILE"]) == (
            "SASL_SSL",
            USER,
            str(ca),
        )
        try:
            await services.start()
            org = str(uuid.uuid4())
            now = datetime.now(UTC)
            async with Upstream(secure) as upstream:
                await upstream.send(example_event("OrganizationCreated", organization_id=org))
                await upstream.send(
                    example_event(
                        "SubscriptionActivated",
                        organization_id=org,
                        subscription_id=str(uuid.uuid4()),
                        plan="STARTER",
                        credits_total=300,
                        period_start=(now - timedelta(days=1)).isoformat(),
                        period_end=(now + timedelta(days=29)).isoformat(),
                    )
                )
                await upstream.wait_consumed(["billing"], within=120)
            deadline = time.monotonic() + 60
            while (await services.get_json("billing", f"/organizations/{org}/credits", organization=org))[1] in (
                None,
                {},
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            status, body = await services.get_json("billing", f"/organizations/{org}/credits", organization=org)
            assert (status, body["balance"]) == (200, 300)
        finally:
            services.stop()

        # A wrong password, and a server certificate from a CA the client does not trust, are refused.
        assert await refused(settings(sasl_port, "SASL_PLAINTEXT", prefix=prefix, password=f"not-{PASSWORD}"))
        assert await refused(settings(ssl_port, "SASL_SSL", prefix=prefix))
        assert not await refused(secure)
    finally:
        server.stop()


def test_half_a_security_configuration_stops_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        load(KafkaSettings, security_protocol="SASL_SSL", sasl_username="hopcast")
    with pytest.raises(SettingsError, match="no file at"):
        load(KafkaSettings, security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(SettingsError, match="does not use TLS"):
        load(KafkaSettings, security_protocol="PLAINTEXT", ssl_cafile=__file__)
    with pytest.raises(SettingsError, match="KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE"):
        load(KafkaSettings, security_protocol="SSL", ssl_keyfile=__file__)
    ca, _ = make_certificates(tmp_path)
    ok = load(KafkaSettings, security_protocol="SASL_SSL", sasl_username="u", sasl_password=PASSWORD, ssl_cafile=ca)
    kwargs = connection_kwargs(ok)
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "PLAIN",
        "u",
        PASSWORD,
    )
    assert kwargs["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    assert PASSWORD not in repr(ok) and PASSWORD not in str(ok.model_dump())
