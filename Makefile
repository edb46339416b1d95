# Two commands matter to a newcomer: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LAB_ROOT ?= $(CURDIR)/.lab
LAB_ARGS ?=
FLEET_ROOT ?= $(CURDIR)/.fleet
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export SMS_LAB_ROOT := $(LAB_ROOT)
PAYLOAD := hotfixes/Q216552/payload
# awx.awx (for awx/configure.yml) lives apart from collections/, which is this
# collection's own link; lint sees both.
AWX_COLLECTIONS := $(VENV)/awx-collections
LINT_ENV := ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/collections:$(CURDIR)/$(AWX_COLLECTIONS)

.PHONY: help venv payload browser-deps lab lab-down lab-status demo rollout rollback compliance test test-deps lint syntax unit molecule bench clean fleet fleet-down fleet-deps bench-ssh bench-smb awx-deps sanity

help:
	@echo "make demo      set up (virtualenv, payload, lab) and run rollout.yml against the lab"
	@echo "make test      run the whole test suite (lint, syntax, sanity, unit, lab, end-to-end, fleet, SMB, AWX, molecule)"
	@echo "make lab / lab-down / lab-status, make rollback, make compliance, make bench"
	@echo "make fleet / fleet-down (root): the SSH fleet, hosts in namespaces (docs/FLEET.md)"

$(BIN)/ansible-playbook: requirements.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c requirements.lock
	touch $@

venv: $(BIN)/ansible-playbook

# The AWX side's tools (ansible-builder, dateutil) and awx.awx, taken from
# PyPI's ansible wheel (Galaxy is out of reach): awx/README.md.
$(VENV)/.awx-deps: $(BIN)/ansible-playbook requirements-awx.txt requirements-awx.lock awx/awx-collection.txt awx/install_awx_collection.py
	$(BIN)/python -m pip install --quiet -r requirements-awx.txt -c requirements-awx.lock
	$(BIN)/python awx/install_awx_collection.py --dest $(AWX_COLLECTIONS) --cache $(VENV)/cache
	touch $@

awx-deps: $(VENV)/.awx-deps

payload: venv
	$(BIN)/python lab/sms-lab payload --out $(PAYLOAD)
	$(BIN)/python bin/sms-hotfix-manifest verify --manifest hotfixes/Q216552/manifest.json

# The browser test renders a report in Debian's headless Chromium. As root
# (CI) a missing one is installed; otherwise the test skips and says why.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium </dev/null >/dev/null 2>&1 \
	  || { apt-get update -q </dev/null && apt-get install -y -q --no-install-recommends chromium </dev/null; }; \
	else echo "browser-deps: no chromium and not root: the browser test will be skipped"; fi

lab: payload
	$(BIN)/python lab/sms-lab build --root $(LAB_ROOT) $(LAB_ARGS)

lab-down:
	$(PYTHON) lab/sms-lab down --root $(LAB_ROOT)

lab-status:
	$(PYTHON) lab/sms-lab status --root $(LAB_ROOT)

rollout: venv
	$(BIN)/ansible-playbook rollout.yml

demo: lab rollout
	@echo
	@echo "The lab stays up under $(LAB_ROOT): look around, run 'make compliance', 'make rollback',"
	@echo "run 'make rollout' again (it changes nothing), and 'make lab-down' when done."

rollback: venv
	$(BIN)/ansible-playbook playbooks/rollback.yml

compliance: venv
	$(BIN)/ansible-playbook playbooks/compliance.yml

lint: venv awx-deps
	$(LINT_ENV) $(BIN)/ansible-lint --profile production
	$(BIN)/ansible-playbook --syntax-check rollout.yml playbooks/*.yml

unit: payload
	$(BIN)/python -m pytest tests/unit

molecule: payload
	$(BIN)/molecule test --all

# Debian packages of the tests' real peers (package:command), installed when root.
TEST_PACKAGES := samba:smbd iproute2:ip

test-deps:
	bash tests/install-test-deps.sh $(TEST_PACKAGES)

# Lint, sanity and molecule run side by side (each mostly one process;
# sanity waits on pip on a fresh clone; molecule's lab is its own); then
# pytest in two workers, each test file (and the fleet and Samba suites)
# whole in one worker (tests/conftest.py).
test: payload test-deps browser-deps fleet-deps awx-deps
	$(MAKE) --no-print-directory -j3 --output-sync=target lint sanity molecule
	$(BIN)/python -m pytest -n 2 tests

# The sms.hotfix collection as people install it (README, "Installing the
# collection"): dist/sms-hotfix-<version>.tar.gz, what galaxy.yml's
# build_ignore leaves in; execution-environment.yml installs this tarball.
.PHONY: collection
collection: venv
	$(BIN)/ansible-galaxy collection build --force --output-path dist

# ansible-test sanity on the checkout as the sms.hotfix collection (tests/sanity/run-sanity)
sanity: venv
	$(BIN)/python tests/sanity/run-sanity

# make bench CLIENTS="100 300 1000" BENCH_ARGS="--repeat 2"; see benchmarks/README.md
CLIENTS ?= 200
BENCH_ARGS ?=
bench: payload
	$(BIN)/python benchmarks/bench.py --clients $(CLIENTS) $(BENCH_ARGS)

# The SSH fleet (docs/FLEET.md): root only; fleet-deps installs Debian's
# openssh-server and iproute2 when missing (and says why not when not root).
fleet-deps:
	@bash fleet/install-deps

fleet: payload fleet-deps
	$(BIN)/python fleet/sms-fleet --root $(FLEET_ROOT) up

fleet-down:
	$(PYTHON) fleet/sms-fleet --root $(FLEET_ROOT) down

bench-ssh: payload fleet-deps
	$(BIN)/python benchmarks/ssh_wave.py

# Issue 14: the client tier over SMB (Samba in a network namespace) beside the
# local connection and the ping floor; root only. test-deps installs Samba.
# make bench-smb BENCH_ARGS="--clients 12 --rounds 2"; see benchmarks/README.md
bench-smb: payload test-deps
	$(BIN)/python benchmarks/smb_wave.py $(BENCH_ARGS)

clean: lab-down
	rm -rf $(VENV) reports .ansible $(PAYLOAD)
