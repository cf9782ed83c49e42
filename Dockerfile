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

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The pinned dependencies first: this layer is rebuilt only when a pin changes.
COPY requirements.txt /src/requirements.txt
RUN pip install --requirement /src/requirements.txt

# Then the collection (the repository root's pyproject.toml: its files go to
# site-packages/ansible_collections, where ansible-core finds it and the agent
# imports it), the runner and the agent. One pip run resolves the pins and
# their declared ranges together, so a pin outside a range fails the build
# instead of being silently replaced. kubernetes.core, a collection the roles
# need, comes from Galaxy with requirements.yml.
COPY . /src
RUN pip install --requirement /src/requirements.txt /src /src/runner /src/agent \
 && ansible-galaxy collection install --collections-path /usr/share/ansible/collections \
      --requirements-file /src/requirements.yml


FROM python:3.11-slim-bookworm

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
