# cluster-discovery: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
IMG ?= ghcr.io/irt-saintexupery/cluster-discovery-operator:0.1.0
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

##@ Getting started

.PHONY: demo
demo: setup testbed ## Run the three-cluster federation of the walkthrough on this machine
	$(BIN)/python -m demo

.PHONY: test
test: setup testbed ## Run every test: unit, integration and end to end, against the real test bed
	$(BIN)/pytest $(PYTEST_ARGS)

##@ Development

.PHONY: setup
setup: $(VENV)/.installed ## Create the virtualenv with the pinned dependencies

$(VENV)/.installed: requirements.txt requirements-test.txt runner/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt -e runner
	touch $@

.PHONY: testbed
testbed: setup ## Build the test bed's kubo, control plane and helm into the cache (only what is missing)
	$(BIN)/python -m testbed.build

.PHONY: unit
unit: setup ## Run the unit tests only (no network, no test bed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: setup ## Lint Python, YAML, roles and playbooks
	$(BIN)/ruff check .
	$(BIN)/mypy runner/src
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint roles playbooks

##@ Help

.PHONY: help
help: ## Show this list
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
