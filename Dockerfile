# The credit-risk service image. The model is trained while the image builds:
#
#   deps     the pinned runtime dependencies in a venv (the runtime stage copies it as is)
#   build    deps + pytest + MLflow: validate the data, train (one MLflow run in an embedded
#            store, /opt/reports/mlruns), apply the absolute floor, run the model tests.
#            Invalid data or a model under the floor fails `docker build` right here.
#   tracking build + the service's user: the compose stack's MLflow server, and the image
#            `make gate-image` / `make retrain-image` run to record into it.
#   runtime  the base image + the runtime venv + app/, training/, the data, the model and the
#            build's reports (and plots). No compilers, no tests, no training-only
#            packages (matplotlib), a non-root user.
#
# `make image` builds it (see the Makefile for why it builds twice: the model version label).
# Plain `docker build .` or `docker compose up --build` work too; the model version label is
# then empty, /opt/build-info.json still names the version. Works with the classic builder
# (Docker 20.10, docker-compose v1) and BuildKit alike, so no BuildKit-only syntax: the pip
# download is cached by layer order (requirements before code) instead of a cache mount.
#
# The base image is a build argument so that machines without a registry can build against
# a local stand-in with the same name (.ci/base-images.sh).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- deps ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS deps
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Exactly the pinned set: --no-deps installs nothing unpinned, and `pip check` fails the
# build naming any dependency requirements.txt forgot. Wheels only: a package that needs
# compiling is a pin to fix, not a compiler to install. The packages' own test suites (pandas
# and scipy ship over 100 MB of them) and the installer are not needed to serve; the build
# stage's model tests run on this trimmed venv.
RUN pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && pip check \
    && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} + \
    && pip uninstall --yes --quiet pip setuptools

# --- build: validate, train, floor gate, model tests ---------------------------------------
FROM deps AS build
WORKDIR /src
# pytest at the version requirements-dev.txt pins (used as constraints: nothing else from the
# dev set is installed, and the versions are written once), and the training-only set (MLflow,
# matplotlib for the plots),
# fully pinned and so installed with --no-deps. `pip check` may report one thing only: MLflow's
# gunicorn<27, which the service's gunicorn pin overrules (requirements-training.txt says why).
COPY requirements.txt requirements-dev.txt requirements-training.txt /tmp/
RUN python -m ensurepip --default-pip >/dev/null \
    && python -m pip install --only-binary=:all: --constraint /tmp/requirements-dev.txt pytest \
    && python -m pip install --no-deps --only-binary=:all: -r /tmp/requirements-training.txt \
    && ! python -m pip check | grep -v -e '^mlflow [0-9.]* has requirement gunicorn<27;' \
        -e '^No broken requirements found.$'
COPY setup.cfg ./
COPY training/ training/
COPY data/credit.csv data/credit.csv
# The training run is recorded in an embedded MLflow store among the reports (a build reaches
# no server): the runtime image keeps it in /opt/reports/mlruns, `make reports-from-image`
# copies it to reports/mlruns.
ENV REPORTS_DIR=/opt/reports \
    TRAINING_TRACKING_DIR=/opt/reports/mlruns
# Fails the build naming every failed check (columns, types, ranges, duplicates, ...).
RUN python -m training validate --data data/credit.csv
# The card records the commit it was built from (training.train.git_commit reads GIT_COMMIT).
# Declared here, after the expensive layers, so only training reruns when it changes.
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
# Exit status 3 (under the absolute floor) fails the build; the log names the failed check.
RUN python -m training train --data data/credit.csv --output /opt/model \
    && mv /opt/reports/gate.json /opt/reports/floor-gate.json \
    && mv /opt/reports/junit-gate.xml /opt/reports/junit-floor-gate.xml
COPY tests/__init__.py tests/conftest.py tests/helpers.py tests/session_cache.py tests/
COPY tests/model/ tests/model/
RUN python -m pytest tests/model -p no:cacheprovider \
        --junitxml=/opt/reports/junit-model-image.xml -o junit_suite_name=model-image
# What this image serves, for `make image` (the label), smoke tests and people: the version
# the registry will give this model (training.registry.new_version_name), the commit and the
# project version.
RUN python -c "import json, training; from pathlib import Path; \
from training.artifact import read_card; from training.registry import new_version_name; \
card = read_card(Path('/opt/model')); \
info = {'model_version': new_version_name(card), 'git_commit': card['git_commit'], \
        'version': training.__version__, 'artifact_sha256': card['artifact_sha256']}; \
text = json.dumps(info, indent=2) + '\\n'; \
Path('/opt/build-info.json').write_text(text); \
Path('/opt/reports/build-info.json').write_text(text)"

# --- tracking: the stack's MLflow server, and the training containers that record into it ---
# The build stage as it is (MLflow, the training code and data, the image's model in
# /opt/model) plus the service's user, so that what `make gate-image` and `make retrain-image`
# write into the shared registry volume belongs to the uid the app and the follower run as.
# No layer of its own but that user: it costs no training and hardly any disk.
FROM build AS tracking
ARG APP_UID=10001
RUN groupadd --gid ${APP_UID} credit \
    && useradd --uid ${APP_UID} --gid credit --home-dir /var/lib/mlflow --no-create-home \
        --shell /usr/sbin/nologin credit \
    && mkdir -p /var/lib/mlflow /var/lib/credit/registry /var/lib/credit/reports \
        /var/lib/credit/training/incoming \
    && chown -R credit:credit /var/lib/mlflow /var/lib/credit
# MLflow 3's server also starts a job runner (seven huey consumers, about 230 MB each) for
# its GenAI jobs; model tracking and the registry need none of it.
ENV HOME=/var/lib/mlflow \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    MODEL_REGISTRY=/var/lib/credit/registry \
    REPORTS_DIR=/var/lib/credit/reports \
    TRAINING_TRACKING_DIR=/var/lib/mlflow/embedded
USER credit
EXPOSE 5000
# One worker: a team's tracking server, not a serving path. Artifacts are served by the
# server (mlflow-artifacts: URIs), so the follower needs only its REST API. --allowed-hosts:
# MLflow refuses Host headers other than localhost and IP addresses (DNS-rebinding guard);
# the stack reaches it by its service name.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-c", \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1", \
     "--backend-store-uri", "sqlite:////var/lib/mlflow/mlflow.db", \
     "--artifacts-destination", "/var/lib/mlflow/artifacts", \
     "--allowed-hosts", "mlflow:5000,localhost:*,127.0.0.1:*"]

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --gid ${APP_UID} credit \
    && useradd --uid ${APP_UID} --gid credit --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin credit \
    && mkdir -p /var/lib/credit/registry /var/lib/credit/log /var/lib/credit/reports \
        /var/lib/credit/training/incoming \
    && chown -R credit:credit /var/lib/credit
COPY --from=deps /opt/venv /opt/venv
WORKDIR /srv/credit-risk
COPY LICENSE ./
COPY data/README.md data/credit.csv data/
COPY training/ training/
COPY app/ app/
RUN /opt/venv/bin/python -m compileall -q training app
COPY --from=build /opt/model /opt/model
COPY --from=build /opt/reports /opt/reports
COPY --from=build /opt/build-info.json /opt/build-info.json

# Named volumes mount over /var/lib/credit/{registry,log}; a new volume takes the
# directory's owner from the image, so the non-root user can write to it. Gunicorn's start
# hook registers and promotes /opt/model when the registry has no production model yet.
# MLflow is a training dependency the runtime does not install, so the training commands run
# here (`make gate-image`, `make retrain-image`) record no tracking run: TRAINING_TRACKING=off.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_SEED_DIR=/opt/model \
    MODEL_REGISTRY=/var/lib/credit/registry \
    PREDICTION_LOG=/var/lib/credit/log/predictions.jsonl \
    FEEDBACK_LOG=/var/lib/credit/log/feedback.jsonl \
    REPORTS_DIR=/var/lib/credit/reports \
    TRAINING_TRACKING=off \
    GUNICORN_BIND=0.0.0.0:8000
USER credit
EXPOSE 8000
# Ready only when a verified model serves; the interpreter is the check (no curl needed).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-c", \
    "import os, urllib.request; port = os.environ['GUNICORN_BIND'].rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]
CMD ["gunicorn", "-c", "app/gunicorn.conf.py", "app.wsgi:app"]

# Last, so that a new commit or model only changes metadata. MODEL_VERSION must be the
# version trained above (checked), so the label never names another model.
ARG GIT_COMMIT=unknown
ARG VERSION=unknown
ARG MODEL_VERSION=
RUN built=$(python -c "import json; print(json.load(open('/opt/build-info.json'))['model_version'])") \
    && if [ -n "$MODEL_VERSION" ] && [ "$MODEL_VERSION" != "$built" ]; then \
        echo "MODEL_VERSION=$MODEL_VERSION, but this build trained $built (did the build" \
            "context change between the two builds of 'make image'?)" >&2; exit 1; fi
LABEL org.opencontainers.image.title="credit-risk" \
      org.opencontainers.image.description="Credit-risk scoring service: Flask/Gunicorn with the model trained at build time" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.version="${VERSION}" \
      io.credit-risk.model.version="${MODEL_VERSION}"
