"""Kubeconfigs for tests: of the one shape members accept (plugins/module_utils/member_kubeconfig.py), and one
with its credentials inline as an admin's is.

The certificate authority is a real self-signed certificate (the test bed's
own kind of CA) made once per test process, so the shape's check (PEM certificates that parse) is met for real.
"""

from __future__ import annotations

import base64
import functools
import secrets
from typing import Any

import yaml

from testbed.certs import CertificateAuthority


@functools.cache
def ca_pem() -> bytes:
    return CertificateAuthority("test member CA").cert_pem


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


def inline_credentials_kubeconfig(
    name: str = "nobody", *, server: str = "https://127.0.0.1:1", ca: str = "CA", cert: str = "CERT", key: str = "KEY"
) -> dict[str, Any]:
    """A kubeconfig holding its CA, client certificate and key inline (``*-data``), as kind's or an admin's does;
    the contents are the given text, which the Kubernetes client copies to files as they are."""

    def data(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": data(ca)}}],
        "users": [{"name": name, "user": {"client-certificate-data": data(cert), "client-key-data": data(key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
