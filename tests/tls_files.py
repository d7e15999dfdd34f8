"""Test TLS material: a private CA, a server certificate for 127.0.0.1 and a client
certificate (CN=jianwai, O=GovHub) — for the api's and the gateway's TLS and mTLS tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for jianwai."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GovHub"),
            ]
        )

    def issue(
        subject: x509.Name, key: Any, issuer: x509.Name, signer: Any, ca: bool, san: Any = None
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue(name("GovHub test CA"), ca_key, name("GovHub test CA"), ca_key, True)
    out: dict[str, Path] = {}
    for label, cn, san in (
        ("server", "127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("client", "jianwai", None),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(name(cn), key, ca.subject, ca_key, False, san)
        out[f"{label}_cert"] = folder / f"{label}.pem"
        out[f"{label}_key"] = folder / f"{label}.key"
        out[f"{label}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{label}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    out["ca"] = folder / "ca.pem"
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return out
