"""config/: the operator's RBAC, its Deployment and the kustomizations, read offline.

Covered: least privilege (what the roles touch is granted, nothing grants
`escalate`, `bind` or wildcards), the names the seed relies on, the manager's
flags, restricted security context and probes, and that every file is listed
by its kustomization. Rendering the overlays and applying them to a real API
server is in tests/integration/deploy/test_deploy_install.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.deploy_support import CONFIG_DIR, GROUP, load_yaml_documents

RBAC_DIR = CONFIG_DIR / "rbac"


def _one(path: Path) -> dict[str, Any]:
    (doc,) = load_yaml_documents(path)
    return doc


def _by_kind(path: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in load_yaml_documents(path)}


def _grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", []) and resource in rule.get("resources", []) and verb in rule["verbs"]
        for rule in rules
    )


MANAGER_RULES = _one(RBAC_DIR / "role.yaml")["rules"]
DEPLOYMENT = _by_kind(CONFIG_DIR / "manager" / "manager.yaml")["Deployment"]
MANAGER, AGENT = DEPLOYMENT["spec"]["template"]["spec"]["containers"]

# (API group, resource, verb) the operator's roles and runner need, and why.
NEEDED = [
    *[(GROUP, plural, verb) for plural in ("swarmpools", "identities") for verb in ("get", "list", "watch", "update")],
    *[(GROUP, "peers", verb) for verb in ("create", "delete", "get", "list", "watch", "patch", "update")],
    *[(GROUP, f"{plural}/status", "update") for plural in ("swarmpools", "identities", "peers")],
    *[(GROUP, f"{plural}/finalizers", "update") for plural in ("swarmpools", "identities", "peers")],
    ("apps", "statefulsets", "create"),
    ("apps", "statefulsets", "delete"),
    ("", "secrets", "create"),
    ("", "secrets", "get"),
    ("", "secrets", "delete"),
    ("", "services", "create"),
    ("", "services", "get"),
    ("", "configmaps", "create"),
    ("", "persistentvolumeclaims", "delete"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "serviceaccounts", "create"),
    ("", "serviceaccounts", "delete"),
    ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
    ("traefik.io", "ingressroutetcps", "create"),
    ("", "events", "create"),
]

# What the operator must not be able to do.
NOT_GRANTED = [
    (GROUP, "swarmpools", "create"),
    (GROUP, "identities", "delete"),
    ("", "pods", "create"),
    ("", "pods", "delete"),
    ("", "namespaces", "create"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ("rbac.authorization.k8s.io", "clusterrolebindings", "create"),
    ("apps", "deployments", "create"),
    # The identity role's token is a service-account-token Secret, not a TokenRequest.
    ("", "serviceaccounts/token", "create"),
]


@pytest.mark.parametrize(("group", "resource", "verb"), NEEDED, ids=lambda v: str(v) or '""')
def test_the_manager_role_grants_what_the_roles_touch(group: str, resource: str, verb: str) -> None:
    assert _grants(MANAGER_RULES, group, resource, verb)


@pytest.mark.parametrize(("group", "resource", "verb"), NOT_GRANTED, ids=lambda v: str(v) or '""')
def test_the_manager_role_grants_nothing_more(group: str, resource: str, verb: str) -> None:
    assert not _grants(MANAGER_RULES, group, resource, verb)


def test_the_default_identity_rules_are_held_by_the_operator_so_it_may_grant_them() -> None:
    """Without `escalate`/`bind` the API server lets the operator grant only rules it holds itself."""
    for resource in ("pods", "services", "configmaps"):
        for verb in ("get", "list", "watch"):
            assert _grants(MANAGER_RULES, "", resource, verb)


@pytest.mark.parametrize("path", sorted(RBAC_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_no_rbac_file_grants_escalate_bind_impersonate_or_wildcards(path: Path) -> None:
    for doc in load_yaml_documents(path):
        for rule in doc.get("rules", []):
            assert not {"escalate", "bind", "impersonate", "*"} & set(rule["verbs"]), rule
            assert "*" not in rule.get("resources", []) and "*" not in rule.get("apiGroups", []), rule


def test_leader_election_uses_leases_in_the_operator_namespace() -> None:
    role = _one(RBAC_DIR / "leader_election_role.yaml")
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "cluster-discovery"
    assert _grants(role["rules"], "coordination.k8s.io", "leases", "update")


def test_the_metrics_endpoint_can_review_tokens_and_access() -> None:
    rules = _one(RBAC_DIR / "metrics_auth_role.yaml")["rules"]
    assert _grants(rules, "authentication.k8s.io", "tokenreviews", "create")
    assert _grants(rules, "authorization.k8s.io", "subjectaccessreviews", "create")


def test_metrics_reader_has_the_seed_name_and_only_reads_metrics() -> None:
    role = _one(RBAC_DIR / "metrics_reader_role.yaml")
    assert role["metadata"]["name"] == "metrics-reader"
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


@pytest.mark.parametrize("kind", ["swarmpool", "identity", "peer"])
def test_every_kind_has_editor_and_viewer_roles(kind: str) -> None:
    plural = {"swarmpool": "swarmpools", "identity": "identities", "peer": "peers"}[kind]
    editor = _one(RBAC_DIR / f"{kind}_editor_role.yaml")["rules"]
    viewer = _one(RBAC_DIR / f"{kind}_viewer_role.yaml")["rules"]
    assert _grants(editor, GROUP, plural, "create") and _grants(editor, GROUP, plural, "delete")
    assert _grants(viewer, GROUP, plural, "list") and not _grants(viewer, GROUP, plural, "update")


def test_every_binding_names_the_manager_service_account() -> None:
    account = _one(RBAC_DIR / "service_account.yaml")["metadata"]
    for name in ("role_binding.yaml", "leader_election_role_binding.yaml", "metrics_auth_role_binding.yaml"):
        (subject,) = _one(RBAC_DIR / name)["subjects"]
        assert (subject["name"], subject["namespace"]) == (account["name"], account["namespace"])
    assert DEPLOYMENT["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


def test_the_manager_runs_the_runner_with_the_expected_flags() -> None:
    assert DEPLOYMENT["metadata"]["name"] == "cluster-discovery-controller-manager"
    assert DEPLOYMENT["metadata"]["namespace"] == "cluster-discovery"
    assert MANAGER["name"] == "manager"
    assert "command" not in MANAGER, "the image's ENTRYPOINT is the runner's console script"
    assert MANAGER["args"] == [
        "--leader-elect",
        "--health-probe-bind-address=:8081",
        "--metrics-bind-address=:8443",
        "--watches-file=/opt/ansible/watches.yaml",
        "--role-metrics-socket=/tmp/role-metrics.sock",
    ]


def test_the_manager_and_agent_are_restricted() -> None:
    pod = DEPLOYMENT["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in (MANAGER, AGENT):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    namespace = _by_kind(CONFIG_DIR / "manager" / "manager.yaml")["Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_read_only_root_filesystem_leaves_scratch_space_writable() -> None:
    mounts = {m["mountPath"]: m["name"] for m in MANAGER["volumeMounts"]}
    volumes = {v["name"]: v for v in DEPLOYMENT["spec"]["template"]["spec"]["volumes"]}
    assert set(mounts) == {"/tmp", "/opt/ansible/.ansible"}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    env = {e["name"]: e["value"] for e in MANAGER["env"]}
    assert env["TMPDIR"] == "/tmp"
    assert env["ANSIBLE_LOCAL_TEMP"].startswith("/tmp/") and env["ANSIBLE_REMOTE_TEMP"].startswith("/tmp/")


def test_the_probes_and_ports_match_the_flags() -> None:
    ports = {p["name"]: p["containerPort"] for p in MANAGER["ports"]}
    assert ports == {"metrics": 8443, "health": 8081}
    assert (MANAGER["livenessProbe"]["httpGet"]["path"], MANAGER["livenessProbe"]["httpGet"]["port"]) == (
        "/healthz",
        "health",
    )
    assert (MANAGER["readinessProbe"]["httpGet"]["path"], MANAGER["readinessProbe"]["httpGet"]["port"]) == (
        "/readyz",
        "health",
    )
    # A busy node may take minutes to start Python and ansible-core: the liveness probe waits for the startup probe.
    assert MANAGER["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert MANAGER["startupProbe"]["periodSeconds"] * MANAGER["startupProbe"]["failureThreshold"] >= 300
    assert set(MANAGER["resources"]) == {"requests", "limits"}


def test_the_metrics_service_is_the_one_the_seed_scrapes() -> None:
    service = _one(CONFIG_DIR / "default" / "metrics_service.yaml")
    assert service["metadata"]["name"] == "cluster-discovery-controller-manager-metrics-service"
    assert service["metadata"]["namespace"] == "cluster-discovery"
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("https", 8443, "metrics")
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("folder", ["crd", "rbac", "manager", "samples", "prometheus"])
def test_every_yaml_file_is_listed_by_its_kustomization(folder: str) -> None:
    directory = CONFIG_DIR / folder
    listed = set(_one(directory / "kustomization.yaml")["resources"])
    files = {str(p.relative_to(directory)) for p in directory.rglob("*.yaml") if p.name != "kustomization.yaml"}
    if folder == "samples":
        # Only one consistent set is listed (see the kustomization's comment); the rest are alternatives.
        assert listed <= files
        assert listed == {
            "peerdiscovery_v1alpha1_swarmpool.yaml",
            "peerdiscovery_v1alpha1_swarmpool_private.yaml",
            "peerdiscovery_v1alpha1_identity.yaml",
        }
    else:
        assert listed == files


def test_the_default_overlay_puts_everything_in_the_cluster_discovery_namespace_without_prefix() -> None:
    default = _one(CONFIG_DIR / "default" / "kustomization.yaml")
    assert default["namespace"] == "cluster-discovery"
    assert "namePrefix" not in default
    assert default["resources"] == ["../crd", "../rbac", "../manager", "metrics_service.yaml"]


def test_the_testing_overlay_sets_the_image_and_pull_policy() -> None:
    testing = _one(CONFIG_DIR / "testing" / "kustomization.yaml")
    assert testing["resources"] == ["../default"]
    assert {p["path"] for p in testing["patches"]} == {"manager_image.yaml", "pull_policy/IfNotPresent.yaml"}
    assert testing["images"] == [{"name": "testing", "newName": "testing-operator", "newTag": "latest"}]
    for policy in ("Always", "IfNotPresent", "Never"):
        patch = _one(CONFIG_DIR / "testing" / "pull_policy" / f"{policy}.yaml")
        assert patch["spec"]["template"]["spec"]["containers"] == [
            {"name": "manager", "imagePullPolicy": policy},
            {"name": "agent", "imagePullPolicy": policy},
        ]


def test_the_runner_accepts_the_manager_flags() -> None:
    """The Deployment's args as the runner's own CLI parses them (a typo would crash-loop the pod)."""
    from cluster_discovery_operator import cli

    settings = cli.settings_from(cli.build_parser().parse_args(MANAGER["args"]))
    assert settings.leadership.enabled is True
    assert settings.probes.bind_address == ":8081"
    assert (settings.metrics.bind_address, settings.metrics.secure) == (":8443", True)
    assert str(settings.watches_file) == "/opt/ansible/watches.yaml"
    assert settings.namespaces == (), "the operator watches every namespace"


def test_the_agent_runs_beside_the_manager_from_the_same_image() -> None:
    assert AGENT["name"] == "agent"
    assert AGENT["image"] == MANAGER["image"], "kustomize's images transformer must reach both containers"
    assert AGENT["command"] == ["cluster-discovery-agent"]
    assert AGENT["args"] == [
        "--health-probe-bind-address=:8082",
        "--announce-period=30",
        "--offline-after=90",
        "--role-metrics-socket=/tmp/role-metrics.sock",
    ]
    # The agent sets the peer gauges on the manager's socket: both mount its folder from the same volume.
    mounts = [{m["mountPath"]: m["name"] for m in c["volumeMounts"]} for c in (MANAGER, AGENT)]
    assert mounts[0]["/tmp"] == mounts[1]["/tmp"]
    assert {p["name"]: p["containerPort"] for p in AGENT["ports"]} == {"agent-health": 8082}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert AGENT[probe]["httpGet"] == {"path": path, "port": "agent-health"}
    assert AGENT["startupProbe"]["periodSeconds"] * AGENT["startupProbe"]["failureThreshold"] >= 300
    assert [m["mountPath"] for m in AGENT["volumeMounts"]] == ["/tmp"]


def test_the_agent_accepts_its_flags() -> None:
    """The agent's own argument parser (agent/ is not installed in the test virtualenv: imported from source)."""
    import sys

    sys.path.insert(0, str(CONFIG_DIR.parent / "agent" / "src"))
    try:
        from cluster_discovery_agent import cli as agent_cli
    finally:
        sys.path.pop(0)
    args = agent_cli.parse_args(AGENT["args"])
    assert (args.health_probe_bind_address, args.announce_period, args.offline_after) == (":8082", 30.0, 90.0)
    assert args.namespace is None, "the agent watches every namespace"
