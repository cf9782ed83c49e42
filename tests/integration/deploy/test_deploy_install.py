"""Installing the operator on a real API server: kustomize overlays, the Makefile, the Helm chart, molecule's playbooks.

Everything here runs against a control plane of its own (the test bed's
etcd + kube-apiserver + kube-controller-manager, built from k8s.io/kubernetes),
because `make undeploy` and molecule's destroy delete the CRDs, which would
pull them from under other tests on the shared one. There is no kubelet for
Deployments, so the manager never starts: what is checked is what the
manifests create and what the operator's account may do, by impersonating it.

Covered: every kustomize overlay renders with the test bed's kubectl;
`make install`, `make deploy IMG=...` and `make undeploy` for real; the
operator's ServiceAccount can do what the roles do, can grant the Identity
rules without `escalate`/`bind`, and cannot grant more; the original manual's
metrics-reader step applies over `make deploy`; `helm lint` is clean;
`helm template` gives the seed's names and the manager's flags, the packaged
chart renders as the directory and its output applies, its watches.yaml
carries the values as vars, custom Identity rules become grantable, and the
original manual's own metrics-reader ClusterRole applies beside a release;
molecule's create, prepare, kustomize and destroy playbooks deploy and remove
the test overlay.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import binaries
from testbed.controlplane import ControlPlane, control_plane_running
from tests.unit.deploy.deploy_support import (
    CHART_DIR,
    CONFIG_DIR,
    GROUP,
    PLURALS,
    REPO_ROOT,
    load_yaml_documents,
    rbac_triples,
)

pytestmark = pytest.mark.integration

OPERATOR_NAMESPACE = "cluster-discovery"
OPERATOR_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:cluster-discovery-controller-manager"
IMAGE = "registry.example.test/cluster-discovery-operator:ci"
DEFAULT_IDENTITY_RULES = [
    {"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": ["get", "list", "watch"]}
]


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane_running("deploy", base_dir=tmp_path_factory.mktemp("deploy-control-plane")) as plane:
        yield plane


def _kubectl_command(cp: ControlPlane) -> str:
    return f"{binaries.kubernetes('kubectl')} --kubeconfig={cp.kubeconfig}"


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "MAKEFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"make {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def _kustomize(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(binaries.kubernetes("kubectl")), "kustomize", str(CONFIG_DIR / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _index(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def _containers(docs: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    pod = _index(docs)[("Deployment", name)]["spec"]["template"]["spec"]
    return {container["name"]: container for container in pod["containers"]}


def _manager(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return _containers(docs, name)["manager"]


# -- kustomize ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["crd", "rbac", "manager", "default", "testing", "samples", "prometheus"])
def test_every_overlay_renders(overlay: str) -> None:
    assert _kustomize(overlay)


def test_the_default_overlay_holds_the_whole_operator_under_the_seed_names() -> None:
    docs = _kustomize("default")
    index = _index(docs)
    for kind, name in [
        ("Namespace", OPERATOR_NAMESPACE),
        ("Deployment", "cluster-discovery-controller-manager"),
        ("ServiceAccount", "cluster-discovery-controller-manager"),
        ("Service", "cluster-discovery-controller-manager-metrics-service"),
        ("ClusterRole", "metrics-reader"),
        ("ClusterRole", "cluster-discovery-manager-role"),
        ("Role", "cluster-discovery-leader-election-role"),
        *[("CustomResourceDefinition", f"{plural}.{GROUP}") for plural in PLURALS.values()],
    ]:
        assert (kind, name) in index, (kind, name)
    namespaced = [doc for doc in docs if doc["kind"] in ("Deployment", "ServiceAccount", "Service", "Role")]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {OPERATOR_NAMESPACE}
    assert _manager(docs, "cluster-discovery-controller-manager")["image"] == (
        "ghcr.io/irt-saintexupery/cluster-discovery-operator:0.1.0"
    )


def test_the_testing_overlay_runs_the_test_image_beside_a_real_deployment() -> None:
    docs = _kustomize("testing")
    for container in _containers(docs, "test-cluster-discovery-controller-manager").values():
        assert (container["image"], container["imagePullPolicy"]) == ("testing-operator:latest", "IfNotPresent")
    index = _index(docs)
    assert ("Namespace", "cluster-discovery-test") in index
    assert ("ClusterRole", "test-cluster-discovery-manager-role") in index
    binding = index[("ClusterRoleBinding", "test-cluster-discovery-manager-rolebinding")]
    assert binding["roleRef"]["name"] == "test-cluster-discovery-manager-role"
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "test-cluster-discovery-controller-manager",
            "namespace": "cluster-discovery-test",
        }
    ]
    # CRD names are the API's: never prefixed.
    assert ("CustomResourceDefinition", f"swarmpools.{GROUP}") in index


# -- the Makefile, for real -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(cp: ControlPlane) -> dict[str, subprocess.CompletedProcess[str]]:
    """`make install` then `make deploy IMG=...` against the control plane, as a user would run them."""
    return {
        "install": _make("install", f"KUBECTL={_kubectl_command(cp)}"),
        "deploy": _make("deploy", f"IMG={IMAGE}", f"KUBECTL={_kubectl_command(cp)}"),
    }


def test_make_install_applies_the_crds(cp: ControlPlane, deployed: dict[str, Any]) -> None:
    assert "customresourcedefinition.apiextensions.k8s.io/swarmpools" in deployed["install"].stdout
    cp.wait_established(*[f"{plural}.{GROUP}" for plural in PLURALS.values()])


def test_make_deploy_installs_the_operator_with_the_given_image(cp: ControlPlane, deployed: dict[str, Any]) -> None:
    deployment = json.loads(
        cp.kubectl(
            "get", "deployment", "cluster-discovery-controller-manager", "-n", OPERATOR_NAMESPACE, "-o", "json"
        ).stdout
    )
    manager, agent = deployment["spec"]["template"]["spec"]["containers"]
    assert (manager["name"], agent["name"]) == ("manager", "agent")
    assert manager["image"] == agent["image"] == IMAGE
    assert manager["args"] == [
        "--leader-elect",
        "--health-probe-bind-address=:8081",
        "--metrics-bind-address=:8443",
        "--watches-file=/opt/ansible/watches.yaml",
        "--role-metrics-socket=/tmp/role-metrics.sock",
    ]
    service = json.loads(
        cp.kubectl(
            "get", "service", "cluster-discovery-controller-manager-metrics-service", "-n", OPERATOR_NAMESPACE,
            "-o", "json",
        ).stdout
    )  # fmt: skip
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 8443)]
    # The namespace enforces the restricted Pod Security level: a pod template breaking it draws a warning.
    assert "would violate PodSecurity" not in deployed["deploy"].stderr


def _can_i(cp: ControlPlane, account: str, attributes: dict[str, str]) -> bool:
    """Ask the API server (a SubjectAccessReview) whether ``account`` may do what ``attributes`` say.

    Used instead of `kubectl auth can-i`, which cannot name a resource whose CRD (traefik's) is not installed.
    """
    namespace = account.split(":")[2]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": account,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    out = cp.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review)).stdout
    allowed: bool = json.loads(out)["status"].get("allowed", False)
    return allowed


def _attrs(verb: str, resource: str, group: str = "", namespace: str = "any", subresource: str = "") -> dict[str, str]:
    attributes = {"verb": verb, "resource": resource, "group": group, "subresource": subresource}
    if namespace:
        attributes["namespace"] = namespace
    return attributes


@pytest.mark.parametrize(
    ("attributes", "allowed"),
    [
        pytest.param(_attrs("update", "swarmpools", GROUP, subresource="status"), True, id="update-swarmpool-status"),
        pytest.param(_attrs("update", "identities", GROUP, subresource="finalizers"), True, id="identity-finalizers"),
        pytest.param(_attrs("create", "peers", GROUP), True, id="create-peers"),
        pytest.param(_attrs("create", "statefulsets", "apps"), True, id="create-statefulsets"),
        pytest.param(_attrs("delete", "persistentvolumeclaims"), True, id="delete-pvcs"),
        pytest.param(_attrs("create", "secrets"), True, id="create-secrets"),
        pytest.param(_attrs("list", "pods"), True, id="list-pods"),
        pytest.param(_attrs("create", "serviceaccounts", subresource="token"), False, id="request-tokens"),
        pytest.param(_attrs("create", "ingressroutetcps", "traefik.io"), True, id="create-ingressroutetcps"),
        pytest.param(_attrs("create", "tokenreviews", "authentication.k8s.io", ""), True, id="review-tokens"),
        pytest.param(_attrs("update", "leases", "coordination.k8s.io", OPERATOR_NAMESPACE), True, id="own-lease"),
        pytest.param(_attrs("update", "leases", "coordination.k8s.io", "elsewhere"), False, id="other-leases"),
        pytest.param(_attrs("create", "swarmpools", GROUP), False, id="create-swarmpools"),
        pytest.param(_attrs("create", "pods"), False, id="create-pods"),
        pytest.param(_attrs("create", "deployments", "apps"), False, id="create-deployments"),
        pytest.param(_attrs("create", "clusterroles", "rbac.authorization.k8s.io", ""), False, id="clusterroles"),
        pytest.param(_attrs("escalate", "roles", "rbac.authorization.k8s.io"), False, id="escalate"),
        pytest.param(_attrs("bind", "roles", "rbac.authorization.k8s.io"), False, id="bind"),
        pytest.param(_attrs("impersonate", "serviceaccounts"), False, id="impersonate"),
    ],
)
def test_the_operator_account_may_do_what_the_roles_do_and_no_more(
    cp: ControlPlane, deployed: object, attributes: dict[str, str], allowed: bool
) -> None:
    assert _can_i(cp, OPERATOR_ACCOUNT, attributes) is allowed


def _identity_account_objects(namespace: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the identity role creates for an Identity's account: ServiceAccount, Role, RoleBinding."""
    meta = {"name": "cluster1-identity", "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cluster1-identity"},
            "subjects": [{"kind": "ServiceAccount", "name": "cluster1-identity", "namespace": namespace}],
        },
    ]


def _apply_as(cp: ControlPlane, account: str, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return cp.kubectl(
        "apply", f"--as={account}", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        check=False,
    )  # fmt: skip


def test_the_operator_grants_the_identity_rules_without_escalate_or_bind(cp: ControlPlane, deployed: object) -> None:
    namespace = cp.create_namespace("identity-rbac")
    created = _apply_as(cp, OPERATOR_ACCOUNT, _identity_account_objects(namespace, DEFAULT_IDENTITY_RULES))
    assert created.returncode == 0, created.stderr
    # The identity role's token: a Secret the token controller fills, which the operator may then read.
    token_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "cluster1-identity-token",
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": "cluster1-identity"},
        },
    }
    assert _apply_as(cp, OPERATOR_ACCOUNT, [token_secret]).returncode == 0
    filled = cp.kubectl(
        "wait", "--for=jsonpath={.data.token}", "--timeout=60s", "secret/cluster1-identity-token", "-n", namespace,
        f"--as={OPERATOR_ACCOUNT}",
    )  # fmt: skip
    assert filled.returncode == 0


def test_the_operator_cannot_grant_rules_it_does_not_hold(cp: ControlPlane, deployed: object) -> None:
    namespace = cp.create_namespace("identity-escalation")
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    refused = _apply_as(cp, OPERATOR_ACCOUNT, _identity_account_objects(namespace, rules))
    assert refused.returncode != 0
    assert "is attempting to grant RBAC permissions not currently held" in refused.stderr, refused.stderr


def test_the_seed_metrics_reader_step_applies_over_make_deploy(cp: ControlPlane, deployed: object) -> None:
    """config/default ships ClusterRole metrics-reader (as operator-sdk's scaffold does); the manual's apply works."""
    seed_step = str(CONFIG_DIR / "samples" / "metrics_reader_binding.yaml")
    applied = cp.kubectl("apply", "-f", seed_step)
    assert "clusterrole.rbac.authorization.k8s.io/metrics-reader " in applied.stdout
    role = json.loads(cp.kubectl("get", "clusterrole", "metrics-reader", "-o", "json").stdout)
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    cp.kubectl("delete", "clusterrolebinding", "metrics-reader-binding")


def test_make_undeploy_removes_the_operator_and_its_crds(cp: ControlPlane, deployed: object) -> None:
    _make("undeploy", "ignore-not-found=true", f"KUBECTL={_kubectl_command(cp)}")
    remaining = cp.kubectl("get", "crd", "-o", "name").stdout
    assert GROUP not in remaining
    assert cp.kubectl("get", "namespace", OPERATOR_NAMESPACE, check=False).returncode != 0
    assert cp.kubectl("get", "clusterrole", "cluster-discovery-manager-role", check=False).returncode != 0


# -- the Helm chart -------------------------------------------------------------------------------------


def _helm(*args: str) -> str:
    result = subprocess.run(
        [str(binaries.binary("helm", "helm")), *args], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _template(release: str, namespace: str, *values: str, chart: Path = CHART_DIR) -> list[dict[str, Any]]:
    out = _helm("template", release, str(chart), "--namespace", namespace, "--include-crds", *values)
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def chart_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart as `make package-helm` ships it: cluster-discovery-<Chart.yaml version>.tgz."""
    destination = tmp_path_factory.mktemp("chart-package")
    _helm("package", str(CHART_DIR), "--destination", str(destination))
    version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
    (package,) = destination.iterdir()
    assert package.name == f"cluster-discovery-{version}.tgz"
    return package


def test_helm_lint_is_clean() -> None:
    out = _make("helm-lint").stdout  # `helm` is not on PATH here: the Makefile falls back to the test bed's
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


def test_the_chart_installed_as_the_seed_does_gives_the_seed_names_and_the_manager_flags() -> None:
    docs = _template("cluster-discovery", OPERATOR_NAMESPACE)
    index = _index(docs)
    assert ("Deployment", "cluster-discovery-controller-manager") in index
    service = index[("Service", "cluster-discovery-controller-manager-metrics-service")]
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 8443)]
    # The original manual creates ClusterRole metrics-reader itself; the chart does only when asked.
    assert ("ClusterRole", "metrics-reader") not in index
    opted_in = _index(_template("cluster-discovery", OPERATOR_NAMESPACE, "--set", "metrics.reader.create=true"))
    assert opted_in[("ClusterRole", "metrics-reader")]["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    kustomized = _kustomize("default")
    chart_containers = _containers(docs, "cluster-discovery-controller-manager")
    kustomize_containers = _containers(kustomized, "cluster-discovery-controller-manager")
    assert list(chart_containers) == list(kustomize_containers) == ["manager", "agent"]
    for name, chart_container in chart_containers.items():
        kustomize_container = kustomize_containers[name]
        probes = ("startupProbe", "livenessProbe", "readinessProbe")
        for field in ("command", "args", "securityContext", "image", "ports", *probes):
            assert chart_container.get(field) == kustomize_container.get(field), (name, field)
    (config_role,) = load_yaml_documents(CONFIG_DIR / "rbac" / "role.yaml")
    assert rbac_triples(index[("ClusterRole", "cluster-discovery-manager-role")]["rules"]) == rbac_triples(
        config_role["rules"]
    )
    assert index[("ClusterRole", "cluster-discovery-identity-rules")]["rules"] == DEFAULT_IDENTITY_RULES
    crds = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "CustomResourceDefinition"}
    assert crds == {f"{plural}.{GROUP}" for plural in PLURALS.values()}


@pytest.mark.parametrize(
    ("values", "expected_args", "absent"),
    [
        pytest.param(["--set", "metrics.enabled=false"], ["--metrics-bind-address=0"], "Service", id="metrics-off"),
        pytest.param(
            ["--set", "metrics.secure=false"], ["--metrics-bind-address=:8443", "--metrics-secure=false"],
            "ClusterRoleBinding/cd-cluster-discovery-metrics-auth-rolebinding", id="metrics-plain-http",
        ),
        pytest.param(
            ["--set", "leaderElection.enabled=false", "--set", "maxConcurrentReconciles=4"],
            ["--max-concurrent-reconciles=4"], "Role", id="no-leader-election",
        ),
        pytest.param(["--set", "agent.enabled=false"], [], "", id="no-agent"),
    ],
)  # fmt: skip
def test_the_chart_values_map_onto_the_manager_flags(values: list[str], expected_args: list[str], absent: str) -> None:
    from cluster_discovery_operator import cli

    docs = _template("cd", "cd-values", *values)
    args = _manager(docs, "cd-cluster-discovery-controller-manager")["args"]
    assert set(expected_args) <= set(args)
    cli.settings_from(cli.build_parser().parse_args(args))  # the runner accepts them
    kind, _, name = absent.partition("/")
    assert not [d for d in docs if d["kind"] == kind and (not name or d["metadata"]["name"] == name)]
    containers = _containers(docs, "cd-cluster-discovery-controller-manager")
    assert list(containers) == (["manager"] if "agent.enabled=false" in values else ["manager", "agent"])
    # The socket the agent sets the peer gauges on: listened on only when the agent runs.
    assert ("--role-metrics-socket=/tmp/role-metrics.sock" in args) == ("agent.enabled=false" not in values)
    if "--leader-elect" in args:
        assert args[0] == "--leader-elect"


CUSTOM_RULES = [
    {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
]
BOOTSTRAP = "/ip4/104.155.27.210/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"


def test_the_packaged_chart_renders_as_the_chart_directory(chart_package: Path) -> None:
    """Nothing the templates read (crds/, files/watches.yaml, the schema) is left out of the package."""
    for values in ([], ["--set", "metrics.reader.create=true", "--set", "defaultNetwork.swarmKey.value=x"]):
        from_package = _template("cd", "cd-package", *values, chart=chart_package)
        assert from_package == _template("cd", "cd-package", *values)
    assert {d["kind"] for d in from_package} >= {"CustomResourceDefinition", "ConfigMap", "Deployment"}


@pytest.fixture(scope="module")
def helm_release(cp: ControlPlane, chart_package: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The packaged chart rendered with custom values and applied with kubectl to the control plane."""
    namespace = "cd-helm"
    values = tmp_path_factory.mktemp("helm") / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "rbac": {"rules": CUSTOM_RULES},
                "defaultNetwork": {"bootstrapNodeAddresses": [BOOTSTRAP], "swarmKey": {"generate": True}},
                "offlineAfter": 45,
            }
        )
    )
    docs = _template("cd", namespace, "--values", str(values), chart=chart_package)
    cp.kubectl("create", "namespace", namespace)
    applied = cp.kubectl(
        "apply", "--validate=strict", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    )
    return {"namespace": namespace, "docs": docs, "applied": applied.stdout}


def test_the_rendered_chart_applies_to_a_real_api_server(cp: ControlPlane, helm_release: dict[str, Any]) -> None:
    assert "deployment.apps/cd-cluster-discovery-controller-manager created" in helm_release["applied"]
    cp.kubectl(
        "get", "deployment/cd-cluster-discovery-controller-manager", "configmap/cd-cluster-discovery-watches",
        "secret/cd-cluster-discovery-default-swarm-key", "serviceaccount/cd-cluster-discovery-controller-manager",
        "-n", helm_release["namespace"],
    )  # fmt: skip


def test_the_watches_file_carries_the_values_as_vars(helm_release: dict[str, Any]) -> None:
    configmap = _index(helm_release["docs"])[("ConfigMap", "cd-cluster-discovery-watches")]
    watches = yaml.safe_load(configmap["data"]["watches.yaml"])
    originals = yaml.safe_load((CHART_DIR / "files" / "watches.yaml").read_text())
    assert [{k: v for k, v in w.items() if k != "vars"} for w in watches] == [
        {k: v for k, v in w.items() if k != "vars"} for w in originals
    ]
    for entry in watches:
        assert entry["vars"]["identity_rbac_rules"] == CUSTOM_RULES
        assert entry["vars"]["swarmpool_default_bootstrap_node_addresses"] == [BOOTSTRAP]
        assert entry["vars"]["identity_offline_after_seconds"] == 45
        assert entry["vars"]["swarmpool_default_swarm_key_secret"] == {
            "name": "cd-cluster-discovery-default-swarm-key",
            "namespace": helm_release["namespace"],
            "key": "swarm-key",
        }
    # The runner loads it, vars included.
    from cluster_discovery_operator.watches import parse

    loaded = parse(configmap["data"]["watches.yaml"], path=Path("/opt/ansible/watches.yaml"), check_paths=False)
    assert [w.gvk.kind for w in loaded] == ["SwarmPool", "Identity", "Peer"]
    assert all(w.vars["identity_rbac_rules"] == CUSTOM_RULES for w in loaded)
    # One value, two readers: the identity role's rounds (above) and the agent between them.
    agent = _containers(helm_release["docs"], "cd-cluster-discovery-controller-manager")["agent"]
    assert "--offline-after=45" in agent["args"]
    deployment = _index(helm_release["docs"])[("Deployment", "cd-cluster-discovery-controller-manager")]
    assert re.fullmatch(r"[0-9a-f]{64}", deployment["spec"]["template"]["metadata"]["annotations"]["checksum/watches"])


def test_the_generated_default_network_key_is_a_valid_swarm_key(cp: ControlPlane, helm_release: dict[str, Any]) -> None:
    from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import swarm_key

    secret = json.loads(
        cp.kubectl(
            "get", "secret", "cd-cluster-discovery-default-swarm-key", "-n", helm_release["namespace"], "-o", "json"
        ).stdout
    )
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    key = swarm_key.from_secret_value(secret["data"]["swarm-key"])
    assert key.text.encode() == __import__("base64").b64decode(secret["data"]["swarm-key"])


def test_the_chart_lets_the_operator_grant_the_custom_identity_rules(
    cp: ControlPlane, helm_release: dict[str, Any]
) -> None:
    account = f"system:serviceaccount:{helm_release['namespace']}:cd-cluster-discovery-controller-manager"
    namespace = cp.create_namespace("helm-identity")
    granted = _apply_as(cp, account, _identity_account_objects(namespace, CUSTOM_RULES))
    assert granted.returncode == 0, granted.stderr
    beyond = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
    other = cp.create_namespace("helm-escalation")
    refused = _apply_as(cp, account, _identity_account_objects(other, beyond))
    assert refused.returncode != 0 and "forbidden" in refused.stderr


def test_the_seed_metrics_reader_step_applies_beside_a_helm_release(cp: ControlPlane, chart_package: Path) -> None:
    """`helm install`, then the manual's own ClusterRole metrics-reader and its binding: no ownership conflict.

    With metrics.reader.create=true the release would own that name, and Helm refuses to take over the
    ClusterRole the user applied: the reason the ClusterRole is opt-in.
    """
    release, namespace = "seed-metrics", "cd-seed-metrics"
    seed_step = str(CONFIG_DIR / "samples" / "metrics_reader_binding.yaml")
    kubeconfig = f"--kubeconfig={cp.kubeconfig}"
    helm = [release, str(chart_package), kubeconfig, f"--namespace={namespace}", "--skip-crds"]
    try:
        _helm("install", *helm, "--create-namespace")
        applied = cp.kubectl("apply", "-f", seed_step).stdout
        assert "clusterrole.rbac.authorization.k8s.io/metrics-reader " in applied
        assert "clusterrolebinding.rbac.authorization.k8s.io/metrics-reader-binding " in applied
        _helm("upgrade", *helm)
        role = json.loads(cp.kubectl("get", "clusterrole", "metrics-reader", "-o", "json").stdout)
        assert "app.kubernetes.io/managed-by" not in role["metadata"].get("labels", {})
        assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]

        taken = subprocess.run(
            [str(binaries.binary("helm", "helm")), "upgrade", *helm, "--set", "metrics.reader.create=true"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert taken.returncode != 0
        assert "metrics-reader" in taken.stderr and "cannot be imported" in taken.stderr, taken.stderr
    finally:
        subprocess.run(
            [str(binaries.binary("helm", "helm")), "uninstall", release, kubeconfig, f"--namespace={namespace}"],
            capture_output=True, timeout=120,
        )  # fmt: skip
        cp.kubectl("delete", "-f", seed_step, "--ignore-not-found", check=False)


# -- molecule's playbooks -------------------------------------------------------------------------------

MOLECULE_DEFAULT = REPO_ROOT / "molecule" / "default"


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """molecule's ${VAR} and ${VAR:-default} substitution, for the values the scenario uses."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, str):
        return re.sub(
            r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or (m.group(2) or "").strip('"'), value
        )
    return value


@pytest.fixture(scope="module")
def molecule_inventory(cp: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """An inventory holding molecule/default's variables, interpolated as molecule would."""
    ephemeral = tmp_path_factory.mktemp("molecule-ephemeral")
    env = {
        "MOLECULE_PROJECT_DIRECTORY": str(REPO_ROOT),
        "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral),
        "OPERATOR_IMAGE": IMAGE,
        "OPERATOR_PULL_POLICY": "IfNotPresent",
        "TEST_OPERATOR_NAMESPACE": "cd-molecule",
        "KUSTOMIZE_PATH": str(binaries.kubernetes("kubectl")),
    }
    config = yaml.safe_load((MOLECULE_DEFAULT / "molecule.yml").read_text())
    inventory = _interpolate(config["provisioner"]["inventory"], env)
    host_vars = {"ansible_connection": "local", **inventory["host_vars"]["localhost"]}
    path = ephemeral / "inventory.yml"
    path.write_text(
        yaml.safe_dump({"all": {"hosts": {"localhost": host_vars}, "vars": inventory["group_vars"]["all"]}})
    )
    return path, host_vars


def _playbook(cp: ControlPlane, inventory: Path, playbook: Path, *, extra_vars: dict[str, Any] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["K8S_AUTH_KUBECONFIG"] = env["KUBECONFIG"] = str(cp.kubeconfig)
    # The scenario's command tasks run `kubectl`: the test bed's.
    env["PATH"] = f"{binaries.kubernetes('kubectl').parent}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    extra = ["--extra-vars", json.dumps(extra_vars)] if extra_vars else []
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), *extra, str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{playbook.name}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def _single_task_playbook(path: Path, name: str, tasks_file: Path, variables: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            [
                {
                    "name": name,
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"group": GROUP},
                    "tasks": [{"name": name, "ansible.builtin.include_tasks": str(tasks_file), "vars": variables}],
                }
            ]
        )
    )
    return path


def test_molecule_stands_in_for_the_load_balancer_controller_where_there_is_none(
    cp: ControlPlane, molecule_inventory: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """tasks/swarmpool_ready.yml on kind: the node's LoadBalancer Service gets its cluster IP as address.

    The operator does not run here, so the test plays its part: it creates the Service the swarmpool role
    creates and writes the SwarmPool status the role and runner write, then checks the tasks accept it.
    """
    inventory, _ = molecule_inventory
    cp.kubectl("apply", "-k", str(CONFIG_DIR / "crd"))
    cp.wait_established(f"swarmpools.{GROUP}")
    namespace = cp.create_namespace("molecule-lb")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "swarm-a-swarm-a-lb", "namespace": namespace},
        "spec": {"type": "LoadBalancer", "selector": {"app": "kubo"}, "ports": [{"name": "swarm", "port": 4001}]},
    }
    pool = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "SwarmPool",
        "metadata": {"name": "swarm-a", "namespace": namespace},
        "spec": {"swarms": [{"name": "swarm-a", "network": {"loadBalancer": {}}}]},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, pool]}))
    peer_id = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
    status: dict[str, Any] = {
        "status": {
            "conditions": [{"type": "Successful", "status": "True", "reason": "Successful", "message": "",
                            "lastTransitionTime": "2026-01-31T12:00:00Z"}],
            "status": {"swarm-a": {"Name": "swarm-a", "Peer Id": peer_id, "Number of bootstraps": 0,
                                   "Number of connected peers": 0,
                                   "Addresses": [f"/ip4/10.96.0.10/tcp/4001/p2p/{peer_id}"]}},
        }
    }  # fmt: skip
    cp.kubectl(
        "patch", f"swarmpools.{GROUP}", "swarm-a", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    playbook = _single_task_playbook(
        tmp_path / "ready.yml",
        "Wait for the node",
        MOLECULE_DEFAULT / "tasks" / "swarmpool_ready.yml",
        {"pool": "swarm-a", "pool_ns": namespace, "swarm_name": "swarm-a"},
    )
    _playbook(cp, inventory, playbook, extra_vars={"fake_load_balancer": True})
    lb = json.loads(cp.kubectl("get", "service", "swarm-a-swarm-a-lb", "-n", namespace, "-o", "json").stdout)
    assert [ingress["ip"] for ingress in lb["status"]["loadBalancer"]["ingress"]] == [lb["spec"]["clusterIP"]]

    # A node whose address does not end in its own peer id is not ready.
    status["status"]["status"]["swarm-a"]["Addresses"] = ["/ip4/10.96.0.10/tcp/4001/p2p/QmSomeoneElse"]
    cp.kubectl(
        "patch", f"swarmpools.{GROUP}", "swarm-a", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    with pytest.raises(AssertionError, match="Check the node is reported"):
        _playbook(cp, inventory, playbook, extra_vars={"fake_load_balancer": True})


def test_molecule_playbooks_deploy_and_remove_the_test_overlay(
    cp: ControlPlane, molecule_inventory: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    inventory, host_vars = molecule_inventory
    out = _playbook(cp, inventory, MOLECULE_DEFAULT / "create.yml")
    # The test bed's API server is built without release ldflags, so it reports v0.0.0-master.
    assert re.search(r'"msg": "Kubernetes v\d+\.\d+\.\d+', out), out
    _playbook(cp, inventory, MOLECULE_DEFAULT / "prepare.yml")
    overlay = yaml.safe_load((Path(host_vars["overlay_dir"]) / "kustomization.yaml").read_text())
    assert overlay["namespace"] == "cd-molecule"

    # converge.yml minus its wait for the Deployment to be available (no kubelet runs it here).
    apply = tmp_path / "apply.yml"
    apply.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Apply the test overlay as converge.yml does",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Deploy",
                            "ansible.builtin.import_tasks": str(MOLECULE_DEFAULT / "tasks" / "kustomize.yml"),
                            "vars": {"state": "present"},
                        }
                    ],
                }
            ]
        )
    )
    _playbook(cp, inventory, apply)
    deployment = json.loads(
        cp.kubectl(
            "get", "deployment", "test-cluster-discovery-controller-manager", "-n", "cd-molecule", "-o", "json"
        ).stdout
    )
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert (container["image"], container["imagePullPolicy"]) == (IMAGE, "IfNotPresent"), container["name"]
    assert GROUP in cp.kubectl("get", "crd", "-o", "name").stdout

    _playbook(cp, inventory, MOLECULE_DEFAULT / "destroy.yml")
    assert cp.kubectl("get", "namespace", "cd-molecule", check=False).returncode != 0
    assert GROUP not in cp.kubectl("get", "crd", "-o", "name").stdout
    assert (REPO_ROOT / "config" / "testing" / "kustomization.yaml").read_text() == (
        subprocess.run(
            ["git", "show", "HEAD:config/testing/kustomization.yaml"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout
    ), "running the scenario must not edit config/testing"


def test_with_watch_namespaces_the_operator_holds_roles_there_and_only_the_reviews_cluster_wide(
    cp: ControlPlane,
) -> None:
    release, namespace = "scoped", "cd-scoped"
    docs = _template(release, namespace, "--set", "watchNamespaces={team-a}")
    cluster_wide = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")}
    # What stays cluster-wide, and why (SECURITY.md): tokenreviews and subjectaccessreviews are cluster-scoped,
    # and the metrics endpoint needs them; the helper roles are for users and bound to nobody.
    bound = {d["roleRef"]["name"] for d in cluster_wide.values() if d["kind"] == "ClusterRoleBinding"}
    assert bound == {f"{release}-cluster-discovery-metrics-auth-role"}
    for name in bound:
        rules = cluster_wide[name]["rules"]
        assert {(r["apiGroups"][0], r["resources"][0]) for r in rules} == {
            ("authentication.k8s.io", "tokenreviews"),
            ("authorization.k8s.io", "subjectaccessreviews"),
        }
    for ns in ("team-a", namespace, "team-b"):
        cp.kubectl("create", "namespace", ns, check=False)
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    account = f"system:serviceaccount:{namespace}:{release}-cluster-discovery-controller-manager"
    for verb, resource, group in (
        ("create", "secrets", ""),
        ("create", "serviceaccounts", ""),
        ("create", "rolebindings", "rbac.authorization.k8s.io"),
        ("create", "peers", GROUP),
        ("list", "pods", ""),
    ):
        assert _can_i(cp, account, _attrs(verb, resource, group, namespace="team-a")), (verb, resource, "team-a")
        assert not _can_i(cp, account, _attrs(verb, resource, group, namespace="team-b")), (verb, resource, "team-b")
        assert not _can_i(cp, account, _attrs(verb, resource, group, namespace="")), (verb, resource, "cluster-wide")
