"""Kubeconfigs of the one shape members accept (plugins/module_utils/member_kubeconfig.py), for tests.

The certificate authority is a real self-signed certificate made once per test
process, so the shape's check (PEM certificates that parse) is met for real.
"""

from __future__ import annotations

import base64
import datetime
import functools
import secrets
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@functools.cache
def ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test member CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def kubeconfig_dict(
    name: str = "member",
    *,
    server: str | None = None,
    token: str | None = None,
    namespace: str = "shared",
    ca: bytes | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server or f"https://{name}.example:6443",
                    "certificate-authority-data": base64.b64encode(ca or ca_pem()).decode(),
                },
            }
        ],
        "users": [{"name": f"{name}-reader", "user": {"token": token or secrets.token_hex(16)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-reader", "namespace": namespace}}],
        "current-context": name,
    }


def kubeconfig_text(name: str = "member", **fields: Any) -> str:
    """A valid kubeconfig in the canonical text the product publishes and stores."""
    return yaml.safe_dump(kubeconfig_dict(name, **fields), sort_keys=False, default_flow_style=False)
