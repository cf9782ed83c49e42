"""Build the test bed's real binaries from their published Go modules.

Each component is a small wrapper Go module under ``testbed/go/<component>``
whose go.mod pins the upstream release. Its binaries land in a cache folder
outside the repository, keyed by component, version and a digest of the build
recipe (go.mod, go.sum, link flags), so a second run builds nothing and any
change builds beside the old entry. A build writes into a
temporary folder and renames it into place, so an interrupted build never
leaves a half-filled cache entry that later runs would trust.

A component may also (or only) take files from its module's source as
published: skaffold's JSON schema of skaffold.yaml, which the tests validate
ours against, comes from the skaffold module this way, downloaded with
``go mod download`` (checked against the wrapper's go.sum) and never built.

Usage: ``python -m testbed.build [component ...]`` (default: all), or
``python -m testbed.build --print-cache`` to print the cache folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TESTBED_DIR = Path(__file__).resolve().parent
GO_DIR = TESTBED_DIR / "go"


@dataclass(frozen=True)
class Component:
    """One wrapper module and the binaries it builds."""

    name: str
    """Folder under testbed/go and prefix of the cache entry."""
    module: str
    """The upstream module whose required version keys the cache entry."""
    binaries: dict[str, str]
    """Binary name -> Go package path to build (relative packages start with ./)."""
    version_variables: tuple[str, ...] = ()
    """Go packages whose Kubernetes-style version variables (gitVersion, gitMajor, ...) are stamped with
    the release: built from the module proxy they would otherwise say v0.0.0-master, which kubectl
    and Helm refuse to parse."""
    files: dict[str, str] = field(default_factory=dict)
    """File name in the cache entry -> path inside ``module``'s source, copied as published (nothing built)."""

    @property
    def wrapper_dir(self) -> Path:
        return GO_DIR / self.name

    @property
    def version(self) -> str:
        return required_version(self.wrapper_dir / "go.mod", self.module)

    @property
    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        version = self.version
        major, minor = version.lstrip("v").split(".")[:2]
        for package in self.version_variables:
            for variable, value in (
                ("gitVersion", version),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
                ("gitCommit", "module-" + version),
                ("buildDate", "1970-01-01T00:00:00Z"),
            ):
                flags.append(f"-X={package}.{variable}={value}")
        return " ".join(flags)

    @property
    def recipe(self) -> str:
        """A digest of what decides the binaries (wrapper go.mod and go.sum, link flags): part of the cache key."""
        digest = hashlib.sha256(self.ldflags.encode())
        if self.files:  # only then: the built components' keys stay as they were
            digest.update(json.dumps(self.files, sort_keys=True).encode())
        for name in ("go.mod", "go.sum"):
            digest.update((self.wrapper_dir / name).read_bytes())
        return digest.hexdigest()[:10]

    @property
    def cache_dir(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}-{self.recipe}"

    def binary(self, name: str) -> Path:
        """A binary, or a file of ``files``, in the cache entry."""
        return self.cache_dir / name

    def is_built(self) -> bool:
        return all(self.binary(name).is_file() for name in [*self.binaries, *self.files])


COMPONENTS: dict[str, Component] = {
    "kubo": Component(
        name="kubo",
        module="github.com/ipfs/kubo",
        binaries={"ipfs": "github.com/ipfs/kubo/cmd/ipfs"},
    ),
    "kubernetes": Component(
        name="kubernetes",
        module="k8s.io/kubernetes",
        binaries={
            "etcd": "./cmd/etcd",
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        version_variables=("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"),
    ),
    "helm": Component(
        name="helm",
        module="helm.sh/helm/v4",
        binaries={"helm": "helm.sh/helm/v4/cmd/helm"},
    ),
    # The monitoring an operator's users run: the alert rules' tests and the end-to-end scrape.
    "prometheus": Component(
        name="prometheus",
        module="github.com/prometheus/prometheus",
        binaries={
            "prometheus": "github.com/prometheus/prometheus/cmd/prometheus",
            "promtool": "github.com/prometheus/prometheus/cmd/promtool",
        },
    ),
    # Only the schema of skaffold.yaml's apiVersion (skaffold/v4beta13), for the tests: no skaffold binary runs here.
    "skaffold": Component(
        name="skaffold",
        module="github.com/GoogleContainerTools/skaffold/v2",
        binaries={},
        files={"v4beta13.json": "docs-v2/content/en/schemas/v4beta13.json"},
    ),
}


def cache_root() -> Path:
    """The cache folder: $CLUSTER_DISCOVERY_TESTBED_CACHE, else under XDG_CACHE_HOME."""
    explicit = os.environ.get("CLUSTER_DISCOVERY_TESTBED_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "cluster-discovery" / "testbed"


def required_version(gomod: Path, module: str) -> str:
    """The version of ``module`` that the wrapper's go.mod requires."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    match = pattern.search(gomod.read_text())
    if not match:
        raise SystemExit(f"{gomod}: no requirement on {module}")
    return match.group(1)


def build(component: Component) -> float:
    """Build every binary of ``component`` into its cache entry; return seconds taken."""
    started = time.monotonic()
    staging = component.cache_dir.with_name(component.cache_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # No cgo (no C toolchain needed); no VCS stamping (the wrapper modules sit in this repository's checkout).
    env = dict(os.environ, CGO_ENABLED=os.environ.get("CGO_ENABLED", "0"))
    env["GOFLAGS"] = " ".join(filter(None, [env.get("GOFLAGS", ""), "-buildvcs=false"]))
    for name, package in component.binaries.items():
        print(f"testbed: building {name} ({component.module} {component.version}) ...", flush=True)
        step = time.monotonic()
        subprocess.run(
            ["go", "build", "-trimpath", f"-ldflags={component.ldflags}", "-o", str(staging / name), package],
            cwd=component.wrapper_dir,
            env=env,
            check=True,
        )
        print(f"testbed: built {name} in {time.monotonic() - step:.0f} s", flush=True)
    if component.files:
        source = module_source(component, env)
        for name, relative in component.files.items():
            print(f"testbed: copying {relative} ({component.module} {component.version})", flush=True)
            shutil.copyfile(source / relative, staging / name)
    shutil.rmtree(component.cache_dir, ignore_errors=True)
    staging.rename(component.cache_dir)
    return time.monotonic() - started


def module_source(component: Component, env: dict[str, str]) -> Path:
    """``component.module``'s source at the required version, downloaded into the Go module cache.

    Run in the wrapper module, so the download is checked against its go.sum (a changed upstream zip fails).
    """
    result = subprocess.run(
        ["go", "mod", "download", "-json", component.module],
        cwd=component.wrapper_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    info = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    if result.returncode != 0 or "Error" in info or "Dir" not in info:
        detail = info.get("Error") or result.stderr.strip() or result.stdout.strip()
        raise subprocess.CalledProcessError(result.returncode or 1, result.args, output=detail)
    return Path(info["Dir"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("components", nargs="*", metavar="component", help=f"any of {', '.join(COMPONENTS)}")
    parser.add_argument("--print-cache", action="store_true", help="print the cache folder and exit")
    args = parser.parse_args(argv)
    if args.print_cache:
        print(cache_root())
        return 0
    unknown = sorted(set(args.components) - set(COMPONENTS))
    if unknown:
        parser.error(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    selected = [COMPONENTS[name] for name in (args.components or COMPONENTS)]
    if shutil.which("go") is None:
        print("testbed: `go` is not on PATH; install Go 1.26 or later", file=sys.stderr)
        return 1
    total = 0.0
    for component in selected:
        if component.is_built():
            print(f"testbed: {component.name} {component.version} cached in {component.cache_dir}")
            continue
        try:
            seconds = build(component)
        except subprocess.CalledProcessError as err:
            detail = f": {err.output}" if isinstance(err.output, str) and err.output else ""
            print(f"testbed: building {component.name} failed: {err}{detail}", file=sys.stderr)
            return 1
        total += seconds
        print(f"testbed: {component.name} {component.version} built in {seconds:.0f} s -> {component.cache_dir}")
    print(f"testbed: done, {total:.0f} s spent building; cache at {cache_root()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
