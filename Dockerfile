# syntax=docker/dockerfile:1
# The operator image: the runner (cluster-discovery-operator, the entrypoint),
# the discovery agent (cluster-discovery-agent, the Deployment's second
# container), the collection peerdiscovery.cluster_discovery (installed by pip,
# as the agent imports it) with its dependency kubernetes.core, and the pinned
# Python dependencies of all.
#
#   make docker-build IMG=ghcr.io/irt-saintexupery/cluster-discovery-operator:0.1.0
#
# Two stages: the first installs into a virtualenv, the second copies only
# the results onto a clean base, so neither pip's caches nor the sources end
# up in the image.
#
# Build arguments, whose defaults build the image users get:
#   BASE_IMAGE               a Debian 12 image with Python 3.11 and its venv
#                            module; the test bed builds one with debootstrap.
#   KUBERNETES_CORE_SOURCE   "galaxy" (requirements.yml from Galaxy), or
#                            "pypi:ansible==X.Y.Z": the kubernetes.core that
#                            the `ansible` package on PyPI ships.
# Where a proxy re-signs TLS, its CA bundle is given as the build secret
# "ca-bundle": pip trusts it during the build, and no layer keeps it.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG KUBERNETES_CORE_SOURCE=galaxy

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The pinned dependencies first: this layer is rebuilt only when a pin changes.
COPY requirements.txt /src/requirements.txt
RUN --mount=type=secret,id=ca-bundle,required=false \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && pip install --requirement /src/requirements.txt

# Then the collection (the repository root's pyproject.toml: its files go to
# site-packages/ansible_collections, where ansible-core finds it and the agent
# imports it), the runner and the agent. One pip run resolves the pins and
# their declared ranges together, so a pin outside a range fails the build
# instead of being silently replaced. kubernetes.core, a collection the roles
# need, comes from KUBERNETES_CORE_SOURCE.
COPY . /src
RUN --mount=type=secret,id=ca-bundle,required=false \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle SSL_CERT_FILE=/run/secrets/ca-bundle; fi \
 && pip install --requirement /src/requirements.txt /src /src/runner /src/agent \
 && case "$KUBERNETES_CORE_SOURCE" in \
      galaxy) ansible-galaxy collection install --collections-path /usr/share/ansible/collections \
                --requirements-file /src/requirements.yml ;; \
      pypi:*) pip download --no-deps --dest /tmp/ansible "${KUBERNETES_CORE_SOURCE#pypi:}" \
              && python3 -c 'import sys, zipfile; wheel = zipfile.ZipFile(sys.argv[1]); wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith("ansible_collections/kubernetes/core/")])' \
                   /tmp/ansible/*.whl /usr/share/ansible/collections \
              && rm -r /tmp/ansible ;; \
      *) echo "KUBERNETES_CORE_SOURCE must be galaxy or pypi:<requirement>, not $KUBERNETES_CORE_SOURCE" >&2; exit 2 ;; \
    esac


FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="cluster-discovery-operator" \
      org.opencontainers.image.description="Decentralized discovery of Kubernetes clusters over private IPFS swarms" \
      org.opencontainers.image.source="https://github.com/irt-saintexupery/cluster-discovery" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# uid 1001 and group 0, as operator-sdk's Ansible operator image: group 0
# with group-writable HOME also works where the platform picks an arbitrary
# uid (OpenShift). Numeric USER so Kubernetes can check runAsNonRoot.
RUN useradd --uid 1001 --gid 0 --home-dir /opt/ansible --no-create-home \
      --shell /usr/sbin/nologin ansible \
 && mkdir -p /opt/ansible/.ansible \
 && chown -R 1001:0 /opt/ansible \
 && chmod -R g=u /opt/ansible

COPY --from=build /opt/venv /opt/venv
COPY --from=build /usr/share/ansible/collections /usr/share/ansible/collections
COPY watches.yaml /opt/ansible/watches.yaml

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/opt/ansible \
    PYTHONUNBUFFERED=1 \
    ANSIBLE_COLLECTIONS_PATH=/usr/share/ansible/collections \
    ANSIBLE_GATHERING=explicit

WORKDIR /opt/ansible
USER 1001

ENTRYPOINT ["cluster-discovery-operator"]
CMD ["--watches-file=/opt/ansible/watches.yaml"]
