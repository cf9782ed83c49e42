# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The one shape of kubeconfig a swarm member may hand us, or we hand to members.

Private to the collection: may change without notice.

A kubeconfig is code as much as data: the Kubernetes clients run a user's
``exec`` plugin or ``auth-provider`` while loading it, read ``tokenFile`` and
client-key paths from the local disk (the operator's own ServiceAccount token
among them) and send them to whatever ``server`` says, honour ``proxy-url``,
and skip TLS checks on request. A member's kubeconfig is therefore never
given to a kubeconfig loader. It is accepted only in exactly this shape,
nothing more:

- ``apiVersion: v1``, ``kind: Config``, ``current-context`` naming the one context;
- one cluster: an ``https`` ``server`` (host and port, no user info, query or
  fragment) and inline ``certificate-authority-data`` holding PEM certificates;
- one user with an inline bearer ``token``;
- one context naming that cluster and user, with a ``namespace``.

The same check runs when a document is received, before a Peer's kubeconfig
is used, and before this cluster publishes its own, so what a member can rely
on and what we accept are one rule. Accepted kubeconfigs are written back in a
canonical form holding only the checked fields.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import traceback
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

try:
    import yaml
    from cryptography import x509
except ImportError:  # the modules report it with missing_required_lib('PyYAML and cryptography')
    HAS_DEPENDENCIES = False
    IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_DEPENDENCIES = True
    IMPORT_ERROR = None

# A sealed kubeconfig must fit a 64 KiB document; a CA bundle of a few
# certificates and a ServiceAccount token stay far below this.
MAX_KUBECONFIG_BYTES = 48 * 1024
MAX_DEPTH = 8
MAX_TOKEN = 8192
MAX_NAME = 253
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
_NAMESPACE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PEM_CERTIFICATE_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")


class KubeconfigError(ValueError):
    """A kubeconfig is not of the one accepted shape; the message names the first fault."""


@dataclass(frozen=True)
class MemberKubeconfig:
    """What a checked kubeconfig says, and all it may say."""

    server: str
    ca_data: bytes
    """The certificate authority, PEM."""
    token: str
    namespace: str
    cluster_name: str
    user_name: str
    context_name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.cluster_name,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(self.ca_data).decode(),
                    },
                }
            ],
            "users": [{"name": self.user_name, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": self.context_name,
                    "context": {"cluster": self.cluster_name, "user": self.user_name, "namespace": self.namespace},
                }
            ],
            "current-context": self.context_name,
        }

    def to_text(self) -> str:
        """The canonical YAML text: only the checked fields, in a fixed order."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)


@functools.cache
def _strict_loader() -> type[yaml.SafeLoader]:
    # Defined on first use: the class derives from PyYAML's, and importing this file must work on a
    # host without PyYAML so that modules can say what is missing.
    class _StrictLoader(yaml.SafeLoader):
        """YAML without aliases (no billion laughs) and with a bounded depth (no RecursionError)."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise KubeconfigError("anchors and aliases are not allowed")
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise KubeconfigError(f"it is nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return _StrictLoader


def parse(text: str) -> MemberKubeconfig:
    """Check ``text`` (untrusted) against the one accepted shape; raise KubeconfigError naming the fault."""
    if not isinstance(text, str):
        raise KubeconfigError("a kubeconfig must be text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KUBECONFIG_BYTES:
        raise KubeconfigError(f"it is larger than {MAX_KUBECONFIG_BYTES} bytes")
    try:
        value = yaml.load(text, Loader=_strict_loader())  # a SafeLoader without aliases
    except KubeconfigError:
        raise
    except (yaml.YAMLError, ValueError, RecursionError) as err:
        raise KubeconfigError(
            f"it is not YAML: {str(err).splitlines()[0][:120] if str(err) else type(err).__name__}"
        ) from None
    return from_dict(value)


def from_dict(value: Any) -> MemberKubeconfig:
    """Check an already parsed kubeconfig; raise KubeconfigError naming the fault."""
    top = _mapping(
        value,
        "the kubeconfig",
        required={"apiVersion", "kind", "clusters", "users", "contexts", "current-context"},
        optional={"preferences"},
    )
    if top["apiVersion"] != "v1" or top["kind"] != "Config":
        raise KubeconfigError("apiVersion must be v1 and kind Config")
    if top.get("preferences") not in (None, {}):
        raise KubeconfigError("preferences must be empty")
    [cluster_entry] = _one(top["clusters"], "clusters")
    [user_entry] = _one(top["users"], "users")
    [context_entry] = _one(top["contexts"], "contexts")

    cluster_entry = _mapping(cluster_entry, "clusters[0]", required={"name", "cluster"})
    cluster = _mapping(cluster_entry["cluster"], "the cluster", required={"server", "certificate-authority-data"})
    server = _server(cluster["server"])
    ca_data = _ca_data(cluster["certificate-authority-data"])

    user_entry = _mapping(user_entry, "users[0]", required={"name", "user"})
    user = _mapping(user_entry["user"], "the user", required={"token"})
    token = user["token"]
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token) or len(token) > MAX_TOKEN:
        raise KubeconfigError(
            f"the user's token must be an inline bearer token (printable, at most {MAX_TOKEN} characters)"
        )

    context_entry = _mapping(context_entry, "contexts[0]", required={"name", "context"})
    context = _mapping(context_entry["context"], "the context", required={"cluster", "user", "namespace"})
    namespace = context["namespace"]
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise KubeconfigError("the context's namespace must be a namespace name")

    cluster_name = _name(cluster_entry["name"], "the cluster's name")
    user_name = _name(user_entry["name"], "the user's name")
    context_name = _name(context_entry["name"], "the context's name")
    if context["cluster"] != cluster_name or context["user"] != user_name:
        raise KubeconfigError("the context must name the one cluster and the one user")
    if top["current-context"] != context_name:
        raise KubeconfigError("current-context must name the one context")
    return MemberKubeconfig(
        server=server,
        ca_data=ca_data,
        token=token,
        namespace=namespace,
        cluster_name=cluster_name,
        user_name=user_name,
        context_name=context_name,
    )


def _mapping(
    value: Any, what: str, *, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KubeconfigError(f"{what} must be a mapping")
    if any(not isinstance(key, str) for key in value):
        raise KubeconfigError(f"{what} has a key that is not text")
    keys = set(value)
    unknown, missing = keys - required - optional, required - keys
    if unknown:
        # Named, so that a refused exec plugin or tokenFile says so in the log.
        raise KubeconfigError(f"{what} may not have {', '.join(sorted(unknown)[:5])}")
    if missing:
        raise KubeconfigError(f"{what} lacks {', '.join(sorted(missing))}")
    return value


def _one(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != 1:
        raise KubeconfigError(f"{what} must hold exactly one entry")
    return value


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise KubeconfigError(f"{what} must be a non-empty text of at most {MAX_NAME} characters")
    if any(ord(ch) < 32 for ch in value):
        raise KubeconfigError(f"{what} contains control characters")
    return value


def _server(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise KubeconfigError("the cluster's server must be an https URL")
    try:
        parsed = urlsplit(value)
        port = parsed.port
    except ValueError:
        raise KubeconfigError("the cluster's server must be an https URL") from None
    if parsed.scheme != "https" or not parsed.hostname:
        raise KubeconfigError("the cluster's server must be an https URL")
    if parsed.username is not None or parsed.password is not None or parsed.query or parsed.fragment:
        raise KubeconfigError("the cluster's server may not carry user info, a query or a fragment")
    if port == 0 or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise KubeconfigError("the cluster's server must be an https URL")
    return value


def _ca_data(value: Any) -> bytes:
    if not isinstance(value, str):
        raise KubeconfigError("certificate-authority-data must be base64 PEM certificates")
    try:
        pem = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KubeconfigError("certificate-authority-data must be base64 PEM certificates") from None
    if not _PEM_CERTIFICATE_RE.search(pem):
        raise KubeconfigError("certificate-authority-data must be base64 PEM certificates")
    # Only certificates: a private key or anything else in the bundle is refused.
    if re.sub(rb"\s+", b"", _PEM_CERTIFICATE_RE.sub(b"", pem)):
        raise KubeconfigError("certificate-authority-data may hold PEM certificates only")
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise KubeconfigError("certificate-authority-data holds a certificate that does not parse") from None
    return pem
