# Predictive pre-scaler for SageMaker endpoints. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml layers/prescaler/requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtual environment (.venv) and install the project with dev extras

.PHONY: demo
demo: $(STAMP) ## Run the simulator on the reference traffic: all seven policies, table + plot in out/
	@mkdir -p $(OUT)
	$(BIN)/prescaler simulate --scenario reference --plot $(OUT)/reference.png

.PHONY: test
test: $(STAMP) ## Unit and integration tests (no AWS account, no network)
	$(BIN)/python -m pytest -m "not e2e and not bench" -q

# checkov (IaC scanner) lives in its own venv: its pins must not move the project's dependencies.
CHECKOV_VERSION ?= 3.3.30
CHECKOV := $(VENV)/checkov/bin/checkov

$(CHECKOV):
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'

.PHONY: lint
lint: $(STAMP) $(CHECKOV) ## ruff + mypy (the package, then each handler on its own: they are all app.py) + checkov on template.yaml
	$(BIN)/ruff check .
	$(BIN)/mypy
	@for f in functions/*/app.py; do $(BIN)/mypy $$f || exit 1; done
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

.PHONY: bench
bench: $(STAMP) ## Speed and memory targets (pytest-benchmark)
	$(BIN)/python -m pytest -m bench --benchmark-enable -q -s tests/bench

.PHONY: e2e
e2e: $(STAMP) ## sam build + sam local invoke of every function/event in a container against moto
	bash tests/e2e/run.sh

.PHONY: clean
clean: ## Remove the venv, build output and caches
	rm -rf $(VENV) .aws-sam $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks

.PHONY: results
results: $(STAMP) ## Regenerate docs/results.md and the README's table: reference (3 seeds) + every real trace, 7 policies (~3 min)
	@mkdir -p docs
	$(BIN)/python scripts/results.py --readme README.md > docs/results.md
	@cat docs/results.md

.PHONY: faults
faults: $(STAMP) ## Regenerate docs/faults.md: every AWS call of every function x every fault (moto, no AWS)
	@mkdir -p docs
	$(BIN)/python scripts/faults.py

.PHONY: sam
sam: $(STAMP) ## sam validate --lint + sam build (installs aws-sam-cli into the venv when missing), then sizes
	@test -x $(BIN)/sam || $(BIN)/python -m pip install --quiet -e '.[sam]'
	PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint
	PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI_TELEMETRY=0 $(BIN)/sam build
	@du -sh --apparent-size .aws-sam/build/*  # unzipped bytes, as Lambda counts them (limit 250 MB)
