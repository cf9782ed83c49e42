"""`molecule test` for real, on a test-bed cluster, with the operator image built here (issue 18).

molecule/testbed is molecule/default (the operator deployed from
config/testing, then the walkthrough's checks in verify.yml) on a cluster that
its create.yml starts (testbed/cluster.py: a real control plane and the
kubelet stand-in, which runs the manager pod in podman) and its destroy.yml
stops. The whole sequence runs: dependency, destroy, syntax, create, prepare,
converge, idempotence (a second converge changes nothing), verify, destroy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import binaries, images
from testbed.collection import activate
from tests.unit.deploy.deploy_support import REPO_ROOT

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_molecule_test_passes_on_a_test_bed_cluster_with_the_image_built_here(tmp_path: Path) -> None:
    image = images.build(["operator"])["operator"]
    env = dict(os.environ)
    env.update(
        {
            "OPERATOR_IMAGE": image,
            "ANSIBLE_COLLECTIONS_PATH": str(activate()),
            # kubernetes.core's kustomize lookup falls back to kubectl's own kustomize: the test bed's kubectl.
            "KUSTOMIZE_PATH": str(binaries.kubernetes("kubectl")),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "TEST_OPERATOR_NAMESPACE": "cd-molecule-testbed",
            "NO_COLOR": "1",
        }
    )
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "molecule"), "test", "--scenario-name", "testbed"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    (tmp_path / "molecule.log").write_text(output)
    assert result.returncode == 0, output[-8000:]
    for step in ("create", "prepare", "converge", "idempotence", "verify", "destroy"):
        assert re.search(rf"\[testbed > {step}\] Executed: Successful", output), f"{step} did not succeed"
