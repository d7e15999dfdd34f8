"""Secure mode of the local cluster: SASL/SCRAM clients, optional TLS, the StandardAuthorizer.

Listeners in secure mode::

    CLIENT      SASL_PLAINTEXT (or SASL_SSL with --tls), SCRAM-SHA-512; also inter-broker
    CONTROLLER  SASL_PLAINTEXT, PLAIN with one static user (the quorum's own traffic)

SCRAM credentials live in the cluster metadata, so the admin user that brokers use to
talk to each other is written at storage format time (``--add-scram``). The controller
listener uses PLAIN because its users are checked before any metadata is loaded; it is
never advertised to clients. Both principals are super users; every other principal
needs ACLs (``allow.everyone.if.no.acl.found=false``), which ``govhub kafka acls``
creates.

The secrets live in ``<state_dir>/security/`` (mode 0700, files 0600)::

    credentials.json          admin user and password, controller password, TLS on/off
    admin-client.properties   librdkafka settings of the admin principal
    ca.pem, ca.key            the local certificate authority (--tls)
    broker.pem                broker key and certificate, PEM keystore (--tls)
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hub.localkafka.config import LOOPBACK, ClusterLayout
from hub.localkafka.errors import LocalKafkaError

if TYPE_CHECKING:
    from cryptography import x509

ADMIN_USER = "govhub-admin"
CONTROLLER_USER = "govhub-controller"
SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SECURITY_DIR = "security"
CREDENTIALS_FILE = "credentials.json"
CLIENT_PROPERTIES_FILE = "admin-client.properties"
CERT_DAYS = 825


@dataclass(frozen=True)
class SecurityPaths:
    """The secret files of one state folder."""

    root: Path

    @property
    def credentials(self) -> Path:
        return self.root / CREDENTIALS_FILE

    @property
    def client_properties(self) -> Path:
        return self.root / CLIENT_PROPERTIES_FILE

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        return self.root / "broker.pem"


def security_paths(state_dir: Path) -> SecurityPaths:
    return SecurityPaths(state_dir / SECURITY_DIR)


@dataclass(frozen=True)
class BrokerCredentials:
    """The two super-user secrets of a secure cluster and whether clients use TLS."""

    admin_password: str
    controller_password: str
    tls: bool = False
    admin_user: str = ADMIN_USER

    @classmethod
    def generate(cls, tls: bool) -> BrokerCredentials:
        # URL-safe characters only: they pass through --add-scram, JAAS and properties.
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), tls)

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (created 0600, never wider)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


def load_credentials(state_dir: Path) -> BrokerCredentials | None:
    """The credentials of a secure cluster, or None when the folder holds no secure one."""
    path = security_paths(state_dir).credentials
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BrokerCredentials(
            admin_password=str(data["admin_password"]),
            controller_password=str(data["controller_password"]),
            tls=bool(data["tls"]),
            admin_user=str(data.get("admin_user", ADMIN_USER)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocalKafkaError(
            f"{path} is unreadable ({exc}): remove the folder {state_dir} to start afresh"
        ) from exc


def save_credentials(state_dir: Path, creds: BrokerCredentials) -> None:
    paths = security_paths(state_dir)
    document = {
        "admin_user": creds.admin_user,
        "admin_password": creds.admin_password,
        "controller_password": creds.controller_password,
        "tls": creds.tls,
    }
    write_secret(paths.credentials, json.dumps(document, indent=2) + "\n")
    lines = [f"{k}={v}" for k, v in client_settings(creds, paths.ca_cert).items()]
    write_secret(paths.client_properties, "\n".join(lines) + "\n")


def client_settings(creds: BrokerCredentials, ca_file: Path | None) -> dict[str, str]:
    """librdkafka settings for the admin principal (``kafka.client_config`` of the hub)."""
    settings = {
        "security.protocol": creds.protocol,
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": creds.admin_user,
        "sasl.password": creds.admin_password,
    }
    if creds.tls:
        if ca_file is None:
            raise LocalKafkaError("a TLS cluster needs its CA file for clients")
        settings["ssl.ca.location"] = str(ca_file)
    return settings


def principal_settings(base: dict[str, str], username: str, password: str) -> dict[str, str]:
    """The same connection settings for another SCRAM principal."""
    return {**base, "sasl.username": username, "sasl.password": password}


def scram_format_arguments(creds: BrokerCredentials) -> list[str]:
    """StorageTool arguments that create the admin's SCRAM credential in the metadata."""
    return [
        "--add-scram",
        f"{SCRAM_MECHANISM}=[name={creds.admin_user},password={creds.admin_password}]",
    ]


def _jaas(module: str, options: dict[str, str]) -> str:
    rendered = " ".join(f'{key}="{value}"' for key, value in options.items())
    return f"{module} required {rendered};"


def secure_settings(
    layout: ClusterLayout, node_id: int, creds: BrokerCredentials, paths: SecurityPaths
) -> dict[str, str]:
    """The server.properties settings that replace the PLAINTEXT listeners in secure mode."""
    broker, controller = layout.ports(node_id)
    settings = {
        "listeners": f"CLIENT://{LOOPBACK}:{broker},CONTROLLER://{LOOPBACK}:{controller}",
        "advertised.listeners": f"CLIENT://{LOOPBACK}:{broker}",
        "listener.security.protocol.map": f"CLIENT:{creds.protocol},CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "CLIENT",
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "listener.name.client.scram-sha-512.sasl.jaas.config": _jaas(
            "org.apache.kafka.common.security.scram.ScramLoginModule",
            {"username": creds.admin_user, "password": creds.admin_password},
        ),
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule",
            {
                "username": CONTROLLER_USER,
                "password": creds.controller_password,
                f"user_{CONTROLLER_USER}": creds.controller_password,
            },
        ),
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{creds.admin_user};User:{CONTROLLER_USER}",
    }
    if creds.tls:
        settings.update(
            {
                "listener.name.client.ssl.keystore.type": "PEM",
                "listener.name.client.ssl.keystore.location": str(paths.broker_keystore),
                "listener.name.client.ssl.truststore.type": "PEM",
                "listener.name.client.ssl.truststore.location": str(paths.ca_cert),
                "listener.name.client.ssl.client.auth": "none",
                "listener.name.client.ssl.endpoint.identification.algorithm": "https",
            }
        )
    return settings


# -- TLS material ------------------------------------------------------------------------


def _ca_key_usage() -> x509.KeyUsage:
    from cryptography import x509

    flags = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    return x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **flags)


def ensure_tls_material(paths: SecurityPaths) -> None:
    """A local CA and a broker certificate for 127.0.0.1/localhost, made once."""
    if paths.ca_cert.is_file() and paths.broker_keystore.is_file():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=5)
    not_after = now + datetime.timedelta(days=CERT_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "GovHub local Kafka CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    write_secret(paths.ca_key, ca_key.private_bytes(pem, pkcs8, plain).decode("ascii"))
    # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain.
    write_secret(
        paths.broker_keystore,
        broker_key.private_bytes(pem, pkcs8, plain).decode("ascii")
        + broker_cert.public_bytes(pem).decode("ascii")
        + ca_cert.public_bytes(pem).decode("ascii"),
    )
    # The CA certificate is public; clients need to read it.
    paths.ca_cert.write_bytes(ca_cert.public_bytes(pem))
