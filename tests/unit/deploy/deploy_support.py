"""Offline checks of objects against the CRDs, as close to the API server as a unit test gets.

The API server validates a custom resource in this order: it prunes unknown
fields (and kubectl's default strict field validation rejects them), applies
the schema's defaults, then checks the OpenAPI value validations, the list
semantics (``x-kubernetes-list-type: map`` keys are unique) and the CEL rules
(``x-kubernetes-validations``). This module reproduces each step for the
schemas we ship:

- unknown fields become errors (``additionalProperties: false`` on every object
  that lists its properties), so a sample field with the wrong casing, which the
  server would silently drop, fails here;
- defaults are applied top-down like the server's structural defaulting, so a
  rule that compares two ports sees the defaulted one;
- value validations run through ``jsonschema`` (installed with ansible-lint);
- CEL cannot be evaluated in Python without a new dependency, so every rule
  the CRDs contain must have a Python equivalent in :data:`CEL_RULES`; a rule
  without one is an error, so adding a rule forces adding its check here. The
  integration tests check the same cases against a real API server.

Used by tests/unit/deploy and tests/integration/deploy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO_ROOT / "config"
CRD_DIR = CONFIG_DIR / "crd" / "bases"
SAMPLES_DIR = CONFIG_DIR / "samples"
CHART_DIR = REPO_ROOT / "charts" / "cluster-discovery"
GROUP = "peerdiscovery.irt-saintexupery.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"SwarmPool": "swarmpools", "Identity": "identities", "Peer": "peers"}

# Python equivalents of the CEL rules in the CRDs, keyed by the rule's text.
CEL_RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "has(self.loadBalancer) != has(self.traefik)": lambda net: ("loadBalancer" in net) != ("traefik" in net),
    "!has(self.swarmPort) || !has(self.apiPort) || self.swarmPort != self.apiPort": lambda net: (
        "swarmPort" not in net or "apiPort" not in net or net["swarmPort"] != net["apiPort"]
    ),
    "self.spec.swarms.all(s, size(self.metadata.name) + size(s.name) <= 48)": lambda pool: all(
        len(pool["metadata"]["name"]) + len(swarm.get("name", "")) <= 48 for swarm in pool["spec"].get("swarms", [])
    ),
}


@dataclass(frozen=True)
class SampleDocument:
    """One YAML document of a file in config/samples."""

    path: Path
    index: int
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.path.name}#{self.index}:{self.body['kind']}/{self.body['metadata']['name']}"


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def rbac_triples(rules: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """An RBAC rule list as sorted (apiGroup, resource, verb) triples, so two lists compare by what they grant."""
    return sorted(
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    )


def crd_files() -> list[Path]:
    return sorted(CRD_DIR.glob(f"{GROUP}_*.yaml"))


def load_crds() -> dict[str, dict[str, Any]]:
    """The CRDs by kind."""
    crds: dict[str, dict[str, Any]] = {}
    for path in crd_files():
        (crd,) = load_yaml_documents(path)
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def version_of(crd: dict[str, Any], name: str = VERSION) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v["name"] == name)


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = version_of(crd)["schema"]["openAPIV3Schema"]
    return schema


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def sample_documents() -> list[SampleDocument]:
    return [
        SampleDocument(path, index, doc)
        for path in sample_files()
        for index, doc in enumerate(load_yaml_documents(path))
    ]


def custom_resource_samples() -> list[SampleDocument]:
    return [doc for doc in sample_documents() if doc.body.get("apiVersion") == API_VERSION]


# -- the server's steps, offline ---------------------------------------------------------------------------


def strict_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema with unknown fields forbidden wherever the server would prune them."""
    strict = copy.deepcopy(schema)

    def walk(node: dict[str, Any]) -> None:
        if "properties" in node:
            node.setdefault("additionalProperties", False)
            for child in node["properties"].values():
                walk(child)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])
        if "items" in node:
            walk(node["items"])

    walk(strict)
    # metadata is validated by the server itself, not by the CRD schema.
    strict["properties"]["metadata"] = {"type": "object"}
    return strict


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill in defaults top-down, as structural defaulting does (a defaulted object gets its own defaults)."""
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in set(value) - set(schema.get("properties", {})):
                value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _semantic_errors(schema: dict[str, Any], value: Any, path: str) -> Iterator[str]:
    """List-map key uniqueness and CEL rules, recursively."""
    for validation in schema.get("x-kubernetes-validations", []):
        rule = " ".join(validation["rule"].split())
        check = CEL_RULES.get(rule)
        if check is None:
            yield f"{path}: CEL rule without a Python equivalent in CEL_RULES: {rule!r}"
        elif not check(value):
            yield f"{path}: {validation.get('message', rule)}"
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name in value:
                yield from _semantic_errors(child, value[name], f"{path}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in set(value) - set(schema.get("properties", {})):
                yield from _semantic_errors(extra, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema["x-kubernetes-list-map-keys"]
            seen: set[tuple[Any, ...]] = set()
            for index, item in enumerate(value):
                key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
                if key in seen:
                    yield f"{path}[{index}]: Duplicate value: {dict(zip(keys, key, strict=True))}"
                seen.add(key)
        for index, item in enumerate(value):
            yield from _semantic_errors(schema["items"], item, f"{path}[{index}]")


def _json_path(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate(crd: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Errors the API server would report for ``obj`` (empty when it is accepted), as 'path: message'."""
    schema = schema_of(crd)
    defaulted = apply_defaults(schema, copy.deepcopy(obj))
    validator = jsonschema.Draft4Validator(strict_json_schema(schema), format_checker=jsonschema.FormatChecker())
    errors = [f"{_json_path(e)}: {e.message}" for e in validator.iter_errors(defaulted)]
    errors.extend(_semantic_errors(schema, defaulted, ""))
    return errors


def defaulted(crd: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the server stores it: with the schema's defaults filled in."""
    result: dict[str, Any] = apply_defaults(schema_of(crd), copy.deepcopy(obj))
    return result


# -- samples as objects, and their invalid variants ---------------------------------------------------------


def sample_object(kind: str, name: str | None = None) -> dict[str, Any]:
    """A deep copy of the first sample of ``kind`` (named ``name`` if given)."""
    for doc in custom_resource_samples():
        if doc.body["kind"] == kind and (name is None or doc.body["metadata"]["name"] == name):
            return copy.deepcopy(doc.body)
    raise LookupError(f"no {kind} sample named {name}")


def base_object(kind: str) -> dict[str, Any]:
    """The sample the invalid variants start from: the seed's private SwarmPool, cluster 1's Identity, the Peer."""
    names = {"SwarmPool": "cluster1-private", "Identity": "cluster1-identity", "Peer": None}
    return sample_object(kind, names[kind])


Mutation = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Variant:
    """A sample made invalid in one way, and how the API server must refuse it."""

    id: str
    kind: str
    mutate: Mutation
    fragment: str
    """A piece of the error message: the field's name or the rule's message."""
    http_status: int = 422
    """422 Unprocessable Entity for schema violations; 400 for unknown fields under strict field validation."""
    status_only: bool = False
    """The change is in .status, which the server only checks on a write through the status subresource."""


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        node = obj
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = copy.deepcopy(value)

    return mutate


def _delete(path: list[Any]) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        node = obj
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


def _duplicate_swarm(obj: dict[str, Any]) -> None:
    obj["spec"]["swarms"].append(copy.deepcopy(obj["spec"]["swarms"][0]))


_SWARM = ["spec", "swarms", 0]
_NETWORK = [*_SWARM, "network"]
_DEFINITION = [*_SWARM, "swarmDefinition"]
_TRAEFIK = {
    "traefikEntryPoint": "ipfs",
    "traefikLoadBalancerServiceName": "traefik",
    "traefikLoadBalancerNamespace": "traefik-v2",
}
_EXACTLY_ONE = "exactly one of loadBalancer or traefik"

# Checked offline (tests/unit/deploy) and against a real API server (tests/integration/deploy).
INVALID_VARIANTS = [
    Variant("swarmpool-without-swarms", "SwarmPool", _delete(["spec", "swarms"]), "swarms"),
    Variant("swarmpool-with-empty-swarms", "SwarmPool", _set(["spec", "swarms"], []), "swarms"),
    Variant("non-integer-swarm-port", "SwarmPool", _set([*_NETWORK, "swarmPort"], "4001x"), "swarmPort"),
    Variant("api-port-zero", "SwarmPool", _set([*_NETWORK, "apiPort"], 0), "apiPort"),
    Variant("swarm-port-above-65535", "SwarmPool", _set([*_NETWORK, "swarmPort"], 65536), "swarmPort"),
    Variant("both-loadbalancer-and-traefik", "SwarmPool", _set([*_NETWORK, "traefik"], _TRAEFIK), _EXACTLY_ONE),
    Variant("neither-loadbalancer-nor-traefik", "SwarmPool", _delete([*_NETWORK, "loadBalancer"]), _EXACTLY_ONE),
    Variant(
        "same-swarm-and-api-port", "SwarmPool", _set([*_NETWORK, "apiPort"], 4001), "swarmPort and apiPort must differ"
    ),
    Variant(
        "non-boolean-exposed-api", "SwarmPool", _set([*_NETWORK, "loadBalancer", "exposedAPI"], "no"), "exposedAPI"
    ),
    Variant("miscased-field", "SwarmPool", _set([*_NETWORK, "loadbalancer"], {}), "loadbalancer", http_status=400),
    Variant("swarm-without-name", "SwarmPool", _delete([*_SWARM, "name"]), "name"),
    Variant("swarm-without-network", "SwarmPool", _delete(_NETWORK), "network"),
    Variant(
        "names-too-long-for-a-statefulset",
        "SwarmPool",
        _set([*_SWARM, "name"], "a-swarm-name-of-thirty-six-characters"),
        "must not exceed 48 characters",
    ),
    Variant("swarm-name-not-a-dns-label", "SwarmPool", _set([*_SWARM, "name"], "Cluster_1"), "name"),
    Variant("duplicate-swarm-names", "SwarmPool", _duplicate_swarm, "Duplicate value"),
    Variant("capacity-not-a-quantity", "SwarmPool", _set([*_SWARM, "storage", "capacity"], "lots"), "capacity"),
    Variant("ipfs-version-not-a-release", "SwarmPool", _set([*_SWARM, "IPFSVersion"], "latest"), "IPFSVersion"),
    Variant(
        "bootstrap-address-not-a-multiaddr",
        "SwarmPool",
        _set([*_DEFINITION, "bootstrapNodeAddresses"], ["104.155.27.210:4001"]),
        "bootstrapNodeAddresses",
    ),
    Variant(
        "secret-ref-not-a-secret-name",
        "SwarmPool",
        _set([*_DEFINITION, "swarmKeySecretRef"], "Private Swarm"),
        "swarmKeySecretRef",
    ),
    Variant(
        "traefik-without-its-service",
        "SwarmPool",
        _set([*_NETWORK, "traefik"], {"traefikEntryPoint": "ipfs"}),
        "traefikLoadBalancerServiceName",
    ),
    Variant("identity-without-name", "Identity", _delete(["spec", "name"]), "name"),
    Variant("identity-without-swarms", "Identity", _delete(["spec", "swarms"]), "swarms"),
    Variant("identity-swarm-without-pool", "Identity", _delete(["spec", "swarms", 0, "swarmPool"]), "swarmPool"),
    Variant("identity-url-without-scheme", "Identity", _set(["spec", "URL"], "35.240.24.118"), "URL"),
    Variant(
        "identity-duplicate-categories",
        "Identity",
        _set(["spec", "categories"], [{"name": "computing"}, {"name": "computing"}]),
        "Duplicate value",
    ),
    Variant("identity-category-not-an-object", "Identity", _set(["spec", "categories"], ["computing"]), "categories"),
    Variant(
        "peer-status-neither-online-nor-offline",
        "Peer",
        _set(["status"], {"status": "Unknown"}),
        "status",
        status_only=True,
    ),
    Variant(
        "peer-negative-missing-counter",
        "Peer",
        _set(["status"], {"missingCounter": -1}),
        "missingCounter",
        status_only=True,
    ),
]
