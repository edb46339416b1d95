# Two commands matter to a newcomer: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LAB_ROOT ?= $(CURDIR)/.lab
LAB_ARGS ?=
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export SMS_LAB_ROOT := $(LAB_ROOT)
PAYLOAD := hotfixes/Q216552/payload
# awx.awx (for awx/configure.yml) lives apart from collections/, which is this
# collection's own link; lint sees both.
AWX_COLLECTIONS := $(VENV)/awx-collections
LINT_ENV := ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/collections:$(CURDIR)/$(AWX_COLLECTIONS)

.PHONY: help venv awx-deps payload lab lab-down lab-status demo rollout rollback compliance test lint syntax unit molecule bench clean

help:
	@echo "make demo      set up (virtualenv, payload, lab) and run rollout.yml against the lab"
	@echo "make test      run the whole test suite (lint, syntax, unit, lab, end-to-end, molecule)"
	@echo "make lab / lab-down / lab-status, make rollback, make compliance, make bench"

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

test: payload awx-deps
	$(LINT_ENV) $(BIN)/ansible-lint --profile production
	$(BIN)/ansible-playbook --syntax-check rollout.yml playbooks/*.yml
	$(BIN)/python -m pytest tests
	$(BIN)/molecule test --all

bench: payload
	$(BIN)/python benchmarks/client_wave.py

clean: lab-down
	rm -rf $(VENV) reports .ansible $(PAYLOAD)
