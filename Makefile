# Two commands matter to a newcomer: `make demo` and `make test` (see README).
SHELL := /bin/bash
# The ansible-core line (README, "Supported ansible-core"): the newest supported
# one by default; each line has its lock (requirements-<line>.lock) and the
# Pythons it runs on. `make test` also runs a compatibility pass on every other
# line (COMPAT_LINES), each in a virtualenv of its own (.venv-<line>).
LINE ?= 2.21
LINES := 2.19 2.20 2.21
COMPAT_LINES := $(filter-out $(LINE),$(LINES))
PYTHONS_2.19 := 3.11
PYTHONS_2.20 := 3.12 3.13
PYTHONS_2.21 := 3.12 3.13
ifeq ($(filter $(LINE),$(LINES)),)
$(error LINE=$(LINE) is not a supported ansible-core line: pick one of $(LINES) (README, "Supported ansible-core"))
endif
LOCK := requirements-$(LINE).lock
VENV ?= .venv
BIN := $(VENV)/bin
# The virtualenv's Python: PYTHON when given, else the first of the line's
# Pythons found, each checked by running it: pyenv's versions (a pyenv shim
# without PYENV_VERSION fails), then PATH. Empty when none is there.
find_python = $(shell for v in $(1); do \
  for p in $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python$$v "$$(command -v python$$v)"; do \
    [ -x "$$p" ] && "$$p" -c 'import sys; assert "%d.%d" % sys.version_info[:2] == "'$$v'"; print(sys.executable)' \
      2>/dev/null && exit 0; \
  done; done)
space := $() $()
or_list = $(subst $(space), or ,$(1))
VENV_PYTHON := $(if $(strip $(PYTHON)),$(PYTHON),$(call find_python,$(PYTHONS_$(LINE))))
VENV_PYTHON_VERSION := $(if $(VENV_PYTHON),$(shell $(VENV_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
# What the virtualenv was made for; one made for another line or Python is made anew.
VENV_STAMP := $(VENV)/.sms-ansible-core-$(LINE)-python$(VENV_PYTHON_VERSION)
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

.PHONY: help venv payload browser-deps lab lab-down lab-status demo rollout rollback compliance test test-deps lint syntax unit molecule bench clean fleet fleet-down fleet-deps bench-ssh bench-smb awx-deps sanity style changelog-lint changelog role-docs

help:
	@echo "make demo      set up (virtualenv, payload, lab) and run rollout.yml against the lab"
	@echo "make test      run the whole test suite (lint, style, changelog-lint, syntax, sanity, unit, lab, end-to-end, fleet, SMB, AWX, molecule)"
	@echo "               on ansible-core $(LINE), then the compatibility passes ($(addprefix make compat-,$(COMPAT_LINES)))"
	@echo "LINE=2.19|2.20|2.21 (default $(LINE)) picks the ansible-core line; PYTHON=... names the Python (README)"
	@echo "make lab / lab-down / lab-status, make rollback, make compliance, make bench"
	@echo "make style (STYLE_FORMAT=skip), make role-docs, make changelog: README, \"Contributing\""
	@echo "make fleet / fleet-down (root): the SSH fleet, hosts in namespaces (docs/FLEET.md)"

# A virtualenv of another Python (an older checkout's 3.11 one, say) is
# removed and made anew, saying so; one of the right Python is updated in place.
$(VENV_STAMP): requirements.txt $(LOCK)
	@if [ -z "$(VENV_PYTHON)" ]; then \
	  echo "ansible-core $(LINE) needs Python $(call or_list,$(PYTHONS_$(LINE))), and none was found (pyenv's" \
	    "versions, then PATH). Install one, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python$(firstword $(PYTHONS_$(LINE)))" \
	    "(or pick another line; $(foreach l,$(COMPAT_LINES),LINE=$(l) needs Python $(call or_list,$(PYTHONS_$(l))).))" >&2; exit 2; fi
	@if [ -z "$(filter $(VENV_PYTHON_VERSION),$(PYTHONS_$(LINE)))" ]; then \
	  echo "PYTHON=$(VENV_PYTHON) is Python $(or $(VENV_PYTHON_VERSION),unknown (it does not run)); ansible-core $(LINE)" \
	    "needs Python $(call or_list,$(PYTHONS_$(LINE)))" >&2; exit 2; fi
	@if [ -e $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
	     != "$(VENV_PYTHON_VERSION)" ]; then \
	  echo "$(VENV) is not a Python $(VENV_PYTHON_VERSION) virtualenv (ansible-core $(LINE)): removing it, making it anew"; \
	  rm -rf $(VENV); fi
	$(VENV_PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c $(LOCK)
	@# The virtualenv's tools find each other (molecule runs ansible-config by
	@# name) when called by path, without an activated virtualenv.
	$(BIN)/python bin/sms-venv-path install
	rm -f $(VENV)/.sms-ansible-core-*
	touch $@

venv: $(VENV_STAMP)

# The AWX side's tools (ansible-builder, dateutil) and awx.awx, taken from
# PyPI's ansible wheel (Galaxy is out of reach): awx/README.md.
$(VENV)/.awx-deps: $(VENV_STAMP) requirements-awx.txt requirements-awx.lock awx/awx-collection.txt awx/install_awx_collection.py
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
	$(or $(VENV_PYTHON),python3) lab/sms-lab down --root $(LAB_ROOT)

lab-status:
	$(or $(VENV_PYTHON),python3) lab/sms-lab status --root $(LAB_ROOT)

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

# The true unit tests (tests/unit: plugins/<type>/ as community.general lays
# them out, and project/ for the repository's tools), then the tests that run
# real ansible-playbook on a plugin (tests/playbook).
unit: payload
	$(BIN)/python -m pytest tests/unit tests/playbook

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
# Then the compatibility passes of the other lines (below), after the whole
# suite: their sanity and their tests, one line after the other.
test: payload test-deps browser-deps fleet-deps awx-deps
	$(MAKE) --no-print-directory -j3 --output-sync=target lint sanity molecule style changelog-lint
	$(BIN)/python -m pytest -n 2 tests
	$(MAKE) --no-print-directory $(addprefix compat-,$(COMPAT_LINES))

# A compatibility pass (issue 24): `make compat-2.19` runs, on that line in its
# own virtualenv (.venv-2.19, made from requirements-2.19.lock with the line's
# Python), ansible-test sanity, the unit tests, the report callback under a
# real ansible-playbook (COMPAT_PLAYBOOK) and COMPAT_E2E: the end-to-end
# rollout (with its plan, reports and compliance run), the rollback, the
# restart and watch of the cure with a failing canary (its reboot handler is
# notified by a templated notify), and the client tier's counts and settings
# (README, "Supported ansible-core"). The payload is the main virtualenv's
# (make payload).
COMPAT_PLAYBOOK := tests/playbook/test_sms_rollout_report.py
COMPAT_E2E := tests/e2e/test_operator_e2e.py::test_rollout_plan_reports_and_compliance_match_the_lab \
  tests/e2e/test_rollout_e2e.py::test_rollback_returns_every_tier_to_the_original_bytes \
  tests/e2e/test_cure_e2e.py::test_a_canary_left_with_the_old_binary_fails_verification_and_stops_the_rollout \
  tests/e2e/test_cure_e2e.py::test_restart_reboot_uses_the_twins_reboot_and_watches_after_it \
  tests/e2e/test_counts.py::test_an_upgrade_wave_costs_one_task_and_one_module_run_per_client \
  tests/e2e/test_counts.py::test_each_client_module_is_handed_the_settings_its_own_host_holds
COMPAT_TARGETS := $(addprefix compat-,$(filter-out $(LINE),$(LINES)))
.PHONY: $(COMPAT_TARGETS) compat-pass
$(COMPAT_TARGETS): compat-%: payload
	$(MAKE) --no-print-directory LINE=$* VENV=.venv-$* PYTHON= compat-pass

# The style-only sanity tests (pylint, pep8, yamllint: the same code, the
# newest line's checkers) run on the newest line alone; every test of what a
# line reads (imports, docs, argument specs, runtime metadata...) on each.
COMPAT_SANITY := --skip-test pylint --skip-test pep8 --skip-test yamllint

compat-pass: venv
	@echo "== compatibility pass: $$($(BIN)/ansible --version | head -n 1) on Python $(VENV_PYTHON_VERSION) ($(VENV))"
	$(BIN)/python tests/sanity/run-sanity $(COMPAT_SANITY)
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider tests/unit $(COMPAT_PLAYBOOK) $(COMPAT_E2E)

# The sms.hotfix collection as people install it (README, "Installing the
# collection"): dist/sms-hotfix-<version>.tar.gz, what galaxy.yml's
# build_ignore leaves in; execution-environment.yml installs this tarball.
.PHONY: collection
collection: venv
	$(BIN)/ansible-galaxy collection build --force --output-path dist

# The code's habits (pyproject.toml): ruff's lint rules on the Python of
# plugins/, bin/, tests/ and benchmarks/, ruff's format check, and mypy on
# the shared code (module_utils, plugin_utils). STYLE_FORMAT=skip leaves the
# format check out (make style STYLE_FORMAT=skip).
STYLE_FORMAT ?= check
STYLE_PATHS := plugins bin tests benchmarks
style: venv
	$(BIN)/ruff check $(STYLE_PATHS)
	$(if $(filter skip,$(STYLE_FORMAT)),@echo "style: ruff format --check skipped (STYLE_FORMAT=skip)",$(BIN)/ruff format --check $(STYLE_PATHS))
	$(BIN)/mypy plugins/module_utils plugins/plugin_utils

# Changelog fragments (changelogs/fragments/, one per change; README,
# "Contributing"): `make changelog-lint` checks them, `make changelog`
# writes CHANGELOG.md from changelogs/changelog.yaml and the fragments
# (antsibull-changelog generate; a release is `antsibull-changelog release`).
changelog-lint: venv
	$(BIN)/antsibull-changelog lint

changelog: venv
	$(BIN)/antsibull-changelog generate

# Each role's README.md is written from its meta/argument_specs.yml
# (bin/sms-role-docs); tests/unit/project/test_role_docs.py fails when one differs.
role-docs: venv
	$(BIN)/python bin/sms-role-docs

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
	$(or $(VENV_PYTHON),python3) fleet/sms-fleet --root $(FLEET_ROOT) down

bench-ssh: payload fleet-deps
	$(BIN)/python benchmarks/ssh_wave.py

# Issue 14: the client tier over SMB (Samba in a network namespace) beside the
# local connection and the ping floor; root only. test-deps installs Samba.
# make bench-smb BENCH_ARGS="--clients 12 --rounds 2"; see benchmarks/README.md
bench-smb: payload test-deps
	$(BIN)/python benchmarks/smb_wave.py $(BENCH_ARGS)

clean: lab-down
	rm -rf $(VENV) $(addprefix .venv-,$(LINES)) reports .ansible $(PAYLOAD)
