# The one list of the project's steps. Jenkins, .ci/run and people call these same targets.
# `make help` lists them; every target people call has a `## help` line.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BASE ?= python3
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
REPORTS := reports
DATA ?= data/credit.csv
MODEL_DIR ?= build/model
export MODEL_REGISTRY ?= $(abspath registry)
export REPORTS_DIR := $(abspath $(REPORTS))

# Test kinds, each with its own folder under tests/ and JUnit file reports/junit-<kind>.xml.
TEST_KINDS := unit data model api integration container pipeline
PYTEST = $(PY) -m pytest

.PHONY: help setup lint test coverage-report train evaluate gate validate rollback clean \
	$(addprefix test-,$(TEST_KINDS))

help: ## show this list of targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

# --- environment --------------------------------------------------------------------------
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed ## create .venv with the pinned runtime and dev dependencies

$(REPORTS):
	mkdir -p $@

# --- quality ------------------------------------------------------------------------------
lint: setup | $(REPORTS) ## flake8 over the code; report in reports/flake8.txt
	$(PY) -m flake8 --tee --output-file=$(REPORTS)/flake8.txt training app pipeline tests setup.py

# One pattern for every kind: own JUnit file, own coverage data file, combined afterwards.
$(addprefix test-,$(TEST_KINDS)): test-%: setup | $(REPORTS) ## run one kind of tests
	COVERAGE_FILE=$(REPORTS)/.coverage.$* $(PYTEST) tests/$* \
		--junitxml=$(REPORTS)/junit-$*.xml -o junit_suite_name=$* \
		--cov --cov-report= $(PYTEST_ARGS)

test: setup | $(REPORTS) ## run every kind of tests, then write reports/coverage.xml
	@failed=""; for kind in $(TEST_KINDS); do \
		$(MAKE) --no-print-directory test-$$kind || failed="$$failed $$kind"; \
	done; \
	$(MAKE) --no-print-directory coverage-report; \
	if [ -n "$$failed" ]; then echo "FAILED test kinds:$$failed"; exit 1; fi

coverage-report: setup ## combine the coverage of all test kinds into reports/coverage.xml
	$(PY) -m coverage combine --keep --data-file=$(REPORTS)/.coverage $(REPORTS)/.coverage.*
	$(PY) -m coverage xml --data-file=$(REPORTS)/.coverage -o $(REPORTS)/coverage.xml
	$(PY) -m coverage report --data-file=$(REPORTS)/.coverage --format=total \
		| sed 's/^/total coverage: /;s/$$/%/'

# --- training -----------------------------------------------------------------------------
validate: setup ## validate data/credit.csv (or DATA=path) against the schema
	$(PY) -m training validate --data $(DATA)

train: setup ## train, evaluate and gate a model; register it and promote it if it passes
	$(PY) -m training train --data $(DATA) --output $(MODEL_DIR)
	$(PY) -m training gate --candidate $(MODEL_DIR) --data $(DATA)

evaluate: setup ## score the production model on the holdout
	$(PY) -m training evaluate --data $(DATA)

gate: setup ## champion/challenger gate for $(MODEL_DIR) against the production registry
	$(PY) -m training gate --candidate $(MODEL_DIR) --data $(DATA)

rollback: setup ## point production back at the previous model version
	$(PY) -m training rollback

clean: ## remove reports, local registry, build output and caches (keeps .venv)
	rm -rf $(REPORTS) registry build dist *.egg-info .pytest_cache run
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# --- service (issue 3) --------------------------------------------------------------------

# --- containers (issue 4) -----------------------------------------------------------------

# --- pipeline, reports, Jenkins (issue 5) -------------------------------------------------
