"""kubeconfig_files: which inline certificates the strategy process writes for its workers (in a process of its own,
as the Kubernetes client keeps what it wrote in a module-wide table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.kubeconfigs import inline_credentials_kubeconfig

PROBE = (
    "import json, os\n"
    "from kubernetes.config import kube_config\n"
    "from cluster_discovery_operator.ansible_plugins.kubeconfig_files import write_for_workers\n"
    "count = write_for_workers()\n"
    "print(json.dumps([count, sorted(open(p).read() for p in kube_config._temp_files.values())]))\n"
)


def _written(tmp_path: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    temporary = tmp_path / "tmp"
    temporary.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, "TMPDIR": os.fspath(temporary), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    count, contents = json.loads(done.stdout)
    assert list(temporary.iterdir()) == [], "the files go when the process ends"
    return count, contents


def test_the_named_contexts_cluster_and_user_are_written_and_no_other(tmp_path: Path) -> None:
    # Two contexts: "a" with its credentials inline, "b" with a token and only its CA inline.
    config = inline_credentials_kubeconfig("a", ca="CA a", cert="CERT a", key="KEY a")
    other = inline_credentials_kubeconfig("b", ca="CA b")
    other["users"][0]["user"] = {"token": "not a file"}
    for section in ("clusters", "users", "contexts"):
        config[section] += other[section]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    assert _written(tmp_path, {"K8S_AUTH_KUBECONFIG": os.fspath(kubeconfig)}) == (3, ["CA a", "CERT a", "KEY a"])
    named = {"K8S_AUTH_KUBECONFIG": os.fspath(kubeconfig), "K8S_AUTH_CONTEXT": "b"}
    assert _written(tmp_path, named) == (1, ["CA b"])


def test_in_a_cluster_or_with_a_kubeconfig_it_cannot_read_nothing_is_written(tmp_path: Path) -> None:
    assert _written(tmp_path, {}) == (0, [])
    assert _written(tmp_path, {"K8S_AUTH_KUBECONFIG": os.fspath(tmp_path / "missing")}) == (0, [])
    broken = tmp_path / "broken"
    broken.write_text("contexts: [unclosed\n")
    assert _written(tmp_path, {"K8S_AUTH_KUBECONFIG": os.fspath(broken)}) == (0, [])
    odd = tmp_path / "odd"
    odd.write_text("- just\n- a list\n")
    assert _written(tmp_path, {"K8S_AUTH_KUBECONFIG": os.fspath(odd)}) == (0, [])
