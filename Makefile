# redbutton.deploy: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
# The repo root is the collection root; ansible finds it through this link.
COLLECTIONS := $(CURDIR)/.build/collections
LINK := $(COLLECTIONS)/ansible_collections/redbutton/deploy
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export PATH := $(BIN):$(PATH)

.PHONY: demo test venv-demo venv-test link system-deps lint sanity unit build integration integration-first integration-later \
	molecule molecule-then-integration bench clean

## demo: roll out, roll back and roll out again a sample app on localhost (no root, no containers)
demo: venv-demo link
	$(BIN)/python examples/demo.py

## test: everything: lint, sanity, unit, build, integration, Molecule
# Independent stages run two at a time (--output-sync keeps each stage's output together):
# the checks of the code (lint and sanity, unit and build), then the integration tests on
# localhost beside the Molecule scenarios in containers, which mostly wait on services. The
# integration tests are two pytest runs: the second starts when Molecule ends, so both cores
# stay busy until the end (each stage still fails the run on its own).
test: system-deps venv-test link
	$(MAKE) -j2 --output-sync=target lint sanity
	$(MAKE) -j2 --output-sync=target unit build
	$(MAKE) -j2 --output-sync=target integration-first molecule-then-integration
	@echo "make test: all stages passed"

venv-demo: $(VENV)/.demo-installed
venv-test: $(VENV)/.test-installed

$(VENV)/.demo-installed: requirements-demo.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make demo needs Python 3.11 or newer; run it as: make demo PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-demo.txt
	touch $@

$(VENV)/.test-installed: requirements-test.txt $(VENV)/.demo-installed
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

link:
	@mkdir -p $(dir $(LINK))
	@ln -sfn ../../../.. $(LINK)

## system-deps: Debian packages the tests need (podman, runc, debootstrap, PostgreSQL)
system-deps:
	scripts/system-deps.sh

# The roles call community.general.haproxy (a dependency in galaxy.yml): the copy the `ansible`
# package bundles in the venv is on the lint's collection path, after this collection.
lint: venv-test link
	ANSIBLE_COLLECTIONS_PATH="$(COLLECTIONS):$$($(BIN)/python -c 'import ansible_collections.community.general as m, os; print(os.path.abspath(m.__path__[0] + "/../../.."))')" \
	    $(BIN)/ansible-lint --profile production
	$(BIN)/antsibull-changelog lint

sanity: venv-test
	scripts/sanity.sh

## unit: pytest of the module logic; the PostgreSQL tests run against a real server
unit: venv-test link system-deps
	eval "$$(scripts/postgres.sh)" && $(BIN)/python -m pytest tests/unit -q

## build: the collection tarball builds and installs into a temporary path
build: venv-test
	scripts/build-install.sh

## integration: pytest driving ansible-playbook on localhost (two runs of the files below)
# The files of the second run: about a fifth of the time, the fleets behind a load balancer.
INTEGRATION_LATER := tests/integration/test_fleet.py tests/integration/test_load_balancer.py
integration: integration-first integration-later

integration-first: venv-test link system-deps
	eval "$$(scripts/postgres.sh)" && $(BIN)/python -m pytest tests/integration -q --durations=10 \
	    $(addprefix --ignore=,$(INTEGRATION_LATER))

integration-later: venv-test link system-deps
	eval "$$(scripts/postgres.sh)" && $(BIN)/python -m pytest $(INTEGRATION_LATER) -q --durations=5

# Both run even when Molecule fails, so one run shows every failure.
molecule-then-integration:
	@status=0; $(MAKE) molecule || status=1; $(MAKE) integration-later || status=1; exit $$status

molecule: venv-test link system-deps
	scripts/molecule.sh

## bench: speed against references measured in the same run (not part of make test)
bench: venv-test link
	$(BIN)/python tests/bench/bench_rollout.py
	$(BIN)/python tests/bench/bench_baseline.py
	$(BIN)/python tests/bench/bench_red_button.py

clean:
	rm -rf .build tests/output redbutton-deploy-*.tar.gz
