"""Where the test bed's real binaries are, and a clear failure when one is missing.

The binaries are built by ``python -m testbed.build`` into a cache outside the
repository. A missing binary is an error, not a reason to skip: a test that
silently skips because nothing was built would report a green run that tested
nothing.
"""

from __future__ import annotations

from pathlib import Path

from testbed.build import COMPONENTS


class BinaryMissing(RuntimeError):
    """A test-bed binary has not been built yet."""


def binary(component: str, name: str) -> Path:
    """The path of ``name`` from ``component``'s cache entry; raises if it is not built."""
    comp = COMPONENTS[component]
    path = comp.binary(name)
    if not path.is_file():
        raise BinaryMissing(
            f"{name} ({comp.module} {comp.version}) is not built: expected {path}. "
            f"Run `python -m testbed.build {component}` (or `make testbed`) first."
        )
    return path


def ipfs() -> Path:
    return binary("kubo", "ipfs")


def kubo_version() -> str:
    """The kubo release the test bed runs, as an image tag would spell it (``v0.43.1``)."""
    return COMPONENTS["kubo"].version


def kubernetes(name: str) -> Path:
    """One of etcd, kube-apiserver, kube-controller-manager, kubectl."""
    return binary("kubernetes", name)


def prometheus(name: str) -> Path:
    """``prometheus`` or ``promtool``."""
    return binary("prometheus", name)


def skaffold_schema(api_version: str) -> Path:
    """skaffold's JSON schema of a skaffold.yaml of ``api_version`` (``skaffold/v4beta13``), from its module."""
    comp = COMPONENTS["skaffold"]
    name = api_version.removeprefix("skaffold/") + ".json"
    if name not in comp.files:
        raise BinaryMissing(
            f"the test bed fetches the schemas {sorted(comp.files)} of {comp.module} {comp.version}, not {name} "
            f"(for apiVersion {api_version}): add it to the skaffold component in testbed/build.py"
        )
    return binary("skaffold", name)
