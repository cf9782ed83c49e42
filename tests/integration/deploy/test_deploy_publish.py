"""The original manual's install workflow: skaffold.yaml, `make package-helm` and `make publish-helm`.

Covered: skaffold.yaml validates against skaffold's own JSON schema for its
apiVersion (fetched from the skaffold Go module by testbed/build.py), and the
schema rejects a misspelt key, so validating means something; the chart,
given the values skaffold's templates produce for an image it built, runs
exactly that image in both containers; `make package-helm` lints and writes
cluster-discovery-<version>.tgz into the project root; `make publish-helm`
without HELM_REPO only packages and says so, uploads the package to a
ChartMuseum server (a loopback HTTP server of this test that records the
upload) and fails with the server's answer when it refuses, publishes to a GCS
bucket as a chart repository with its index.yaml merged (gsutil stands in: a
script mapping gs:// onto a folder), runs `helm push` for oci:// (recorded by a
stand-in helm: no OCI registry runs here), and refuses other schemes.

What is real: the test bed's helm, make, curl, the Makefile and chart copied
into a temporary project root (so the repository's root is never written).
Not run: skaffold itself (it needs a container builder and a registry).
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from testbed import binaries
from tests.unit.deploy.deploy_support import CHART_DIR, REPO_ROOT
from tests.unit.deploy.test_deploy_skaffold import template_name

pytestmark = pytest.mark.integration

SKAFFOLD = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
PACKAGE = f"{CHART['name']}-{CHART['version']}.tgz"


def _helm_binary() -> str:
    return str(binaries.binary("helm", "helm"))


# -- skaffold.yaml ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def skaffold_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(binaries.skaffold_schema(SKAFFOLD["apiVersion"]).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_skaffold_yaml_validates_against_skaffolds_schema(skaffold_validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in skaffold_validator.iter_errors(SKAFFOLD)]
    assert not errors


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(["deploy", "helm", "releases", 0, "chartPath"], id="release-chartpath-misspelt"),
        pytest.param(["build", "artifacts", 0, "docker", "dockerfile"], id="docker-dockerfile-misspelt"),
        pytest.param(["deploy", "helm"], id="deploy-helm-misspelt"),
    ],
)
def test_skaffolds_schema_rejects_a_misspelt_key(
    skaffold_validator: jsonschema.Draft7Validator, path: list[str | int]
) -> None:
    config = copy.deepcopy(SKAFFOLD)
    node: Any = config
    for part in path[:-1]:
        node = node[part]
    node[str(path[-1]).lower() + "s"] = node.pop(path[-1])
    assert not skaffold_validator.is_valid(config)


@pytest.mark.parametrize(
    "registry",
    [pytest.param("eu.gcr.io/irt-sb", id="seed-gcr-repo"), pytest.param("localhost:5000", id="kind-local-registry")],
)
def test_the_chart_runs_the_image_skaffold_built(registry: str) -> None:
    """The values skaffold's templates give for an image pushed under --default-repo=<registry>."""
    (artifact,) = SKAFFOLD["build"]["artifacts"]
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    repository, tag, digest = f"{registry}/{artifact['image']}", "v0.1.0-3-gabcdef0", "sha256:" + "ab" * 32
    name = template_name(artifact["image"])
    variables = {f"IMAGE_REPO_{name}": repository, f"IMAGE_TAG_{name}": tag, f"IMAGE_DIGEST_{name}": digest}
    sets = []
    for key, template in release["setValueTemplates"].items():
        value = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: variables[m.group(1)], template)
        sets += ["--set-string", f"{key}={value}"]
    out = subprocess.run(
        [_helm_binary(), "template", release["name"], str(REPO_ROOT / release["chartPath"]),
         "--namespace", release["namespace"], *sets],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images == {"manager": f"{repository}:{tag}@{digest}", "agent": f"{repository}:{tag}@{digest}"}


# -- make package-helm / publish-helm ---------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root holding the Makefile and the chart, where `make` may write its package."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(REPO_ROOT / "Makefile", root / "Makefile")
    shutil.copytree(CHART_DIR, root / "charts" / "cluster-discovery")
    return root


def _make(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Loopback servers only: no proxy may catch curl's upload.
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "KUBECONFIG") and not k.lower().endswith("_proxy")
    }
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(project), f"HELM={_helm_binary()}", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, f"make {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_make_package_helm_writes_the_versioned_package_into_the_project_root(project: Path) -> None:
    out = _make(project, "package-helm").stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert [p.name for p in project.glob("*.tgz")] == [PACKAGE] == ["cluster-discovery-0.1.0.tgz"]
    shown = subprocess.run(
        [_helm_binary(), "show", "chart", str(project / PACKAGE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert yaml.safe_load(shown)["version"] == CHART["version"]


def test_make_publish_helm_without_a_repository_only_packages(project: Path) -> None:
    out = _make(project, "publish-helm").stdout
    assert f"publish-helm: HELM_REPO is not set: {PACKAGE} is packaged, not published" in out
    assert (project / PACKAGE).is_file()


@dataclass
class ChartMuseum:
    """A loopback stand-in for ChartMuseum's upload API: records each POST and answers with ``status``."""

    status: int = 201
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def chartmuseum() -> Iterator[ChartMuseum]:
    museum = ChartMuseum()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            museum.uploads.append((self.path, body))
            answer = {"saved": True} if museum.status == 201 else {"error": "file already exists"}
            payload = json.dumps(answer).encode()
            self.send_response(museum.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    museum.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield museum
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_make_publish_helm_uploads_the_package_to_a_chartmuseum_server(project: Path, chartmuseum: ChartMuseum) -> None:
    out = _make(project, "publish-helm", f"HELM_REPO={chartmuseum.url}").stdout
    assert chartmuseum.uploads == [("/api/charts", (project / PACKAGE).read_bytes())]
    assert '{"saved": true}' in out
    assert f"publish-helm: published {PACKAGE} to {chartmuseum.url}" in out


def test_make_publish_helm_fails_when_chartmuseum_refuses(project: Path, chartmuseum: ChartMuseum) -> None:
    chartmuseum.status = 409
    result = _make(project, "publish-helm", f"HELM_REPO={chartmuseum.url}", check=False)
    assert result.returncode != 0
    assert "file already exists" in result.stdout + result.stderr
    assert "published" not in result.stdout


FAKE_GSUTIL = """#!/bin/sh
# A stand-in for gsutil: gs://BUCKET/PATH is {root}/BUCKET/PATH; every call is logged.
set -eu
echo "$*" >> '{root}/calls'
path_of() {{ case "$1" in gs://*) echo '{root}/'"${{1#gs://}}" ;; *) echo "$1" ;; esac; }}
if [ "$1" = -q ] && [ "$2" = stat ]; then test -e "$(path_of "$3")"; exit; fi
if [ "$1" = cp ]; then dst=$(path_of "$3"); mkdir -p "$(dirname "$dst")"; cp "$(path_of "$2")" "$dst"; exit; fi
exit 64
"""


def test_make_publish_helm_to_a_gcs_bucket_uploads_the_package_and_merges_the_index(
    project: Path, tmp_path: Path
) -> None:
    buckets = tmp_path / "gcs"
    (buckets / "cd-charts" / "charts").mkdir(parents=True)
    gsutil = tmp_path / "gsutil"
    gsutil.write_text(FAKE_GSUTIL.format(root=buckets))
    gsutil.chmod(0o755)
    earlier: dict[str, Any] = {
        "apiVersion": "v1",
        "entries": {
            "cluster-discovery": [
                {"apiVersion": "v2", "name": "cluster-discovery", "version": "0.0.9", "digest": "0" * 64,
                 "urls": ["https://storage.googleapis.com/cd-charts/charts/cluster-discovery-0.0.9.tgz"]}
            ]
        },
        "generated": "2020-10-09T15:06:45Z",
    }  # fmt: skip
    (buckets / "cd-charts" / "charts" / "index.yaml").write_text(yaml.safe_dump(earlier))

    out = _make(project, "publish-helm", "HELM_REPO=gs://cd-charts/charts", f"GSUTIL={gsutil}").stdout
    assert f"publish-helm: published {PACKAGE} to gs://cd-charts/charts" in out
    uploaded = buckets / "cd-charts" / "charts" / PACKAGE
    assert uploaded.read_bytes() == (project / PACKAGE).read_bytes()
    index = yaml.safe_load((buckets / "cd-charts" / "charts" / "index.yaml").read_text())
    entries = {e["version"]: e for e in index["entries"]["cluster-discovery"]}
    assert set(entries) == {"0.0.9", CHART["version"]}
    assert entries[CHART["version"]]["urls"] == [f"https://storage.googleapis.com/cd-charts/charts/{PACKAGE}"]
    assert entries[CHART["version"]]["digest"] == hashlib.sha256(uploaded.read_bytes()).hexdigest()
    assert entries["0.0.9"]["urls"] == earlier["entries"]["cluster-discovery"][0]["urls"]
    assert not list(Path(project).glob("index.yaml")), "the index is built outside the project root"


def test_make_publish_helm_to_an_empty_gcs_bucket_creates_the_index(project: Path, tmp_path: Path) -> None:
    buckets = tmp_path / "gcs"
    buckets.mkdir()
    gsutil = tmp_path / "gsutil"
    gsutil.write_text(FAKE_GSUTIL.format(root=buckets))
    gsutil.chmod(0o755)
    _make(project, "publish-helm", "HELM_REPO=gs://cd-charts", f"GSUTIL={gsutil}")
    index = yaml.safe_load((buckets / "cd-charts" / "index.yaml").read_text())
    assert [e["urls"] for e in index["entries"]["cluster-discovery"]] == [
        [f"https://storage.googleapis.com/cd-charts/{PACKAGE}"]
    ]


def test_make_publish_helm_pushes_to_an_oci_registry_with_helm_push_recorded_by_a_stand_in(
    project: Path, tmp_path: Path
) -> None:
    calls = tmp_path / "helm-push-calls"
    helm = tmp_path / "helm"
    helm.write_text(
        f'#!/bin/sh\nif [ "$1" = push ]; then echo "$*" >> \'{calls}\'; exit 0; fi\nexec \'{_helm_binary()}\' "$@"\n'
    )
    helm.chmod(0o755)
    _make(project, "publish-helm", "HELM_REPO=oci://127.0.0.1:5000/charts", f"HELM={helm}")
    assert calls.read_text().splitlines() == [f"push {PACKAGE} oci://127.0.0.1:5000/charts"]


def test_make_publish_helm_refuses_an_unknown_scheme(project: Path) -> None:
    result = _make(project, "publish-helm", "HELM_REPO=ftp://charts.example.test", check=False)
    assert result.returncode != 0
    assert "HELM_REPO must start with oci://, gs://, http:// or https://" in result.stderr
