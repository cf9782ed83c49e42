"""skaffold.yaml, read offline: what `skaffold run --default-repo=...` and `skaffold dev` do with it.

Covered: it builds one image from the Dockerfile at the root, installs
charts/cluster-discovery as the release and namespace the original manual's
metrics URL names, and hands the chart the image skaffold built through
skaffold's templates, on keys the chart's values and image helper use. Its
validation against skaffold's own JSON schema, and rendering the chart with
the values skaffold would set, are in tests/integration/deploy/test_deploy_publish.py.
No skaffold binary runs here: it needs a container builder and a registry.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.unit.deploy.deploy_support import CHART_DIR, REPO_ROOT

SKAFFOLD = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def template_name(image: str) -> str:
    """An artifact's name as skaffold's templates spell it: '/', '-', '.' and ':' become '_'."""
    return re.sub(r"[/\-.:]", "_", image)


def _artifact() -> dict[str, Any]:
    (artifact,) = SKAFFOLD["build"]["artifacts"]
    return dict(artifact)


def _release() -> dict[str, Any]:
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    return dict(release)


def test_it_is_a_current_skaffold_v2_config() -> None:
    assert SKAFFOLD["kind"] == "Config"
    assert re.fullmatch(r"skaffold/v4beta\d+", SKAFFOLD["apiVersion"])


def test_it_builds_the_operator_image_from_the_dockerfile_at_the_root() -> None:
    artifact = _artifact()
    # A bare name, so --default-repo=<registry> gives <registry>/cluster-discovery-operator.
    assert artifact["image"] == "cluster-discovery-operator"
    assert artifact.get("context", ".") == "."
    assert artifact["docker"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert (REPO_ROOT / "Dockerfile").is_file()


def test_it_installs_the_chart_as_the_release_the_seed_metrics_url_names() -> None:
    release = _release()
    assert (REPO_ROOT / release["chartPath"]).resolve() == CHART_DIR
    # https://cluster-discovery-controller-manager-metrics-service.cluster-discovery:8443/metrics
    assert (release["name"], release["namespace"], release["createNamespace"]) == (
        "cluster-discovery",
        "cluster-discovery",
        True,
    )
    assert "helm" not in SKAFFOLD.get("manifests", {}), "one helm deployer, no second rendering"


def test_it_sets_the_chart_image_from_the_built_artifact() -> None:
    name = template_name(_artifact()["image"])
    templates = _release()["setValueTemplates"]
    assert templates == {
        "image.repository": f"{{{{.IMAGE_REPO_{name}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{name}}}}}@{{{{.IMAGE_DIGEST_{name}}}}}",
    }
    # The keys exist in the chart, whose image is "<image.repository>:<image.tag>".
    assert {"repository", "tag"} <= set(VALUES["image"])
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    assert '"%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag)' in helpers


def test_nothing_else_is_overridden() -> None:
    """Every other value is the chart's: skaffold run installs what `helm install` would."""
    assert "setValues" not in _release()
    assert "valuesFiles" not in _release()
