# cluster-discovery: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
IMG ?= ghcr.io/irt-saintexupery/cluster-discovery-operator:0.1.0
PYTEST_ARGS ?=
# Test processes of `make test`: most tests wait on servers rather than compute, so four share two cores well.
# Five were 4 % faster here (531 s against 553 s) but left less room on a slower machine: CI timed out in three
# files at once with five and passed with four.
TEST_WORKERS ?= 4

.DEFAULT_GOAL := help

##@ Getting started

.PHONY: demo
demo: setup testbed ## Run the three-cluster federation of the walkthrough on this machine
	$(BIN)/python -m demo

.PHONY: test
test: setup testbed images ## Run every test: unit, integration and end to end, against the real test bed (TEST_WORKERS in parallel)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20 $(PYTEST_ARGS)

##@ Development

.PHONY: setup
setup: $(VENV)/.installed ## Create the virtualenv with the pinned dependencies

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml runner/pyproject.toml agent/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt -e . -e runner -e agent
	touch $@

.PHONY: testbed
testbed: setup ## Build the test bed's kubo, control plane, helm, prometheus and promtool, fetch skaffold's schema, into the cache (only what is missing)
	$(BIN)/python -m testbed.build

.PHONY: images
images: setup ## Build the test bed's container images with podman (Debian base, the operator from the Dockerfile, kubo) into the cache
	$(BIN)/python -m testbed.images

.PHONY: unit
unit: setup ## Run the unit tests only (no network, no test bed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: setup testbed ## Lint Python (ruff, mypy --strict), YAML, roles and playbooks, the Helm chart, the alert rules, and ansible-test sanity
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPYPATH=$$($(BIN)/python -m testbed.collection) $(BIN)/mypy --strict --explicit-package-bases \
	  runner/src agent/src testbed bench \
	  $$($(BIN)/python -m testbed.collection)/ansible_collections/peerdiscovery/cluster_discovery/plugins/module_utils
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint roles playbooks
	$(HELM) lint --strict $(CHART)
	$(PROMTOOL) check rules $(CHART)/files/prometheus-rules.yaml
	$(BIN)/python tests/sanity/run.py

##@ Deployment

# The container tool that builds and pushes $(IMG) (docker or podman).
CONTAINER_TOOL ?= docker
# kubectl of the cluster to install into (its current context).
KUBECTL ?= kubectl
# helm from PATH, else the one `make testbed` builds.
HELM ?= $(or $(shell command -v helm 2>/dev/null),$(shell $(BIN)/python -c 'from testbed.build import COMPONENTS; print(COMPONENTS["helm"].binary("helm"))' 2>/dev/null),helm)
PROMTOOL ?= $(or $(shell command -v promtool 2>/dev/null),$(shell $(BIN)/python -c 'from testbed.build import COMPONENTS; print(COMPONENTS["prometheus"].binary("promtool"))' 2>/dev/null),promtool)
CHART := charts/cluster-discovery
ignore-not-found ?= false

.PHONY: docker-build
docker-build: ## Build the operator image $(IMG) (runner, collection, pinned dependencies)
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the operator image $(IMG)
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubectl context
	$(KUBECTL) apply -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs, and with them every SwarmPool, Identity and Peer (ignore-not-found=true to ignore missing ones)
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/crd

# config/default with the image of both containers (manager, agent) replaced
# by $(IMG), written under bin/ (not versioned) so that deploying never edits
# the kustomizations in config/.
define DEPLOY_KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../config/default
patches:
  - target:
      kind: Deployment
      name: cluster-discovery-controller-manager
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/image
        value: $(IMG)
      - op: replace
        path: /spec/template/spec/containers/1/image
        value: $(IMG)
endef
export DEPLOY_KUSTOMIZATION

.PHONY: deploy
deploy: ## Deploy the operator (config/default, image $(IMG)) to the cluster of the current kubectl context
	@mkdir -p bin/deploy
	@printf '%s\n' "$$DEPLOY_KUSTOMIZATION" > bin/deploy/kustomization.yaml
	$(KUBECTL) apply -k bin/deploy

.PHONY: undeploy
undeploy: ## Remove what deploy created, CRDs included (ignore-not-found=true to ignore missing ones)
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/default

.PHONY: chart-sync
chart-sync: ## Copy the CRDs and watches.yaml into the Helm chart (a unit test checks they are identical)
	cp config/crd/bases/peerdiscovery.irt-saintexupery.com_*.yaml $(CHART)/crds/
	cp watches.yaml $(CHART)/files/watches.yaml

.PHONY: sanity
sanity: setup ## Run ansible-test sanity on a copy of the collection (part of make lint)
	$(BIN)/python tests/sanity/run.py $(SANITY_ARGS)

.PHONY: helm-lint
helm-lint: ## Lint the Helm chart (warnings fail)
	$(HELM) lint --strict $(CHART)

.PHONY: kind-test
kind-test: setup ## Run the molecule kind scenario: build the image, deploy it on a new kind cluster, verify (needs docker and kind)
	$(BIN)/molecule test --scenario-name kind

##@ Release

# The chart's package, named by Chart.yaml's name and version, in the project
# root: cluster-discovery-<version>.tgz.
CHART_PACKAGE = $(shell awk '/^name:/ {n = $$2} /^version:/ {v = $$2} END {print n "-" v ".tgz"}' $(CHART)/Chart.yaml)
# The chart repository `make publish-helm` publishes to; empty: package only.
#   oci://REGISTRY/PATH     an OCI registry: `helm push` (log in first: `helm registry login REGISTRY`)
#   gs://BUCKET[/PATH]      a Google Cloud Storage bucket served as a chart repository, as the
#                           original's was: gsutil (GSUTIL) uploads the package and index.yaml, merged
#                           with the bucket's; its entries point at HELM_REPO_URL (default: the
#                           bucket's public https://storage.googleapis.com/BUCKET[/PATH] address)
#   http(s)://HOST[/PATH]   a ChartMuseum server: the package is POSTed to HELM_REPO/api/charts
#                           (HELM_REPO_CURL_FLAGS for credentials, e.g. --user NAME:PASSWORD or --netrc)
HELM_REPO ?=
HELM_REPO_URL ?= $(patsubst gs://%,https://storage.googleapis.com/%,$(HELM_REPO))
HELM_REPO_CURL_FLAGS ?=
GSUTIL ?= gsutil
CURL ?= curl

.PHONY: package-helm
package-helm: helm-lint ## Package the Helm chart into cluster-discovery-<version>.tgz in the project root
	$(HELM) package $(CHART) --destination .

.PHONY: publish-helm
publish-helm: package-helm ## Package the chart and publish it to HELM_REPO (oci://, gs:// or a ChartMuseum http(s):// URL)
	@set -eu; repo='$(HELM_REPO)'; package='$(CHART_PACKAGE)'; \
	case "$$repo" in \
	  '') echo "publish-helm: HELM_REPO is not set: $$package is packaged, not published" ;; \
	  oci://*) $(HELM) push "$$package" "$$repo" ;; \
	  gs://*) \
	    index=$$(mktemp -d); trap 'rm -rf "$$index"' EXIT; merge=''; \
	    if $(GSUTIL) -q stat "$$repo/index.yaml"; then \
	      $(GSUTIL) cp "$$repo/index.yaml" "$$index/previous.yaml"; merge="--merge $$index/previous.yaml"; \
	    fi; \
	    cp "$$package" "$$index/"; \
	    $(HELM) repo index "$$index" --url '$(HELM_REPO_URL)' $$merge; \
	    $(GSUTIL) cp "$$package" "$$repo/$$package"; \
	    $(GSUTIL) cp "$$index/index.yaml" "$$repo/index.yaml" ;; \
	  http://*|https://*) \
	    $(CURL) --fail-with-body --silent --show-error $(HELM_REPO_CURL_FLAGS) \
	      --header 'Content-Type: application/octet-stream' --data-binary "@$$package" "$${repo%/}/api/charts"; echo ;; \
	  *) echo "publish-helm: HELM_REPO must start with oci://, gs://, http:// or https://, not: $$repo" >&2; exit 2 ;; \
	esac; \
	if [ -n "$$repo" ]; then echo "publish-helm: published $$package to $$repo"; fi

##@ Help

.PHONY: help
help: ## Show this list
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
