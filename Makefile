# research-orchestration: the commands an operator and a developer type.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
# Wheels and the lab's base tree are slow to build; they live outside the
# repository so that a fresh clone on the same machine reuses them.
CACHE  ?= $(HOME)/.cache/research-orchestration
WHEELS := $(CACHE)/wheels
LLAMA  := llama-cpp-python==0.3.36

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# --- environment -----------------------------------------------------------

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the project and its tools

$(VENV)/.installed: pyproject.toml constraints.txt $(WHEELS)/.llama
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q --find-links $(WHEELS) -c constraints.txt -e '.[dev,llama]'
	touch $@

# llama-cpp-python ships as source only; compiling it takes minutes, so the
# wheel is built once and kept in the cache (and shipped to the nodes).
$(WHEELS)/.llama:
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  python3 -m pip wheel -q --no-deps -w $(WHEELS) $(LLAMA)
	touch $@

# --- checks ----------------------------------------------------------------

.PHONY: test
test: lint unit integration lab-tests molecule lab-e2e ## Run every test, as CI does

.PHONY: lint
lint: venv ## ruff, mypy, yamllint and ansible-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

.PHONY: unit
unit: venv ## Unit tests (no services)
	$(BIN)/pytest tests/unit

.PHONY: integration
integration: venv ## Tests against real Redis, Celery and ansible subprocesses
	$(BIN)/pytest tests/integration

.PHONY: lab-tests
lab-tests: venv ## Tests of the lab itself: boot, network, faults, teardown (root)
	$(BIN)/pytest tests/lab

SCENARIOS := smoke controller worker

.PHONY: molecule
molecule: venv ## Molecule scenarios on lab machines: smoke, controller, worker
	for scenario in $(SCENARIOS); do \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule test -s $$scenario || exit 1; \
	done

.PHONY: lab-e2e
# One lab for all three files, provisioned once; site.yml's idempotence is
# judged first, before the fault tests kill and cut machines.
lab-e2e: venv ## site.yml, the operations playbooks, faults and secrets on a lab (root)
	$(BIN)/pytest tests/e2e/test_site.py tests/e2e/test_monitoring.py tests/e2e/test_faults.py \
	  tests/e2e/test_secrets.py

# --- benchmarks (not part of `make test`; see docs/benchmarks.md) -----------

# Each benchmark records benchmarks/results/<name>.json; the report turns them
# into docs/benchmarks.md. The whole run takes about 15 minutes on 2 cores.
.PHONY: bench
bench: venv ## Run every benchmark and write docs/benchmarks.md from the results
	$(PY) benchmarks/dispatch.py
	$(PY) benchmarks/submit_latency.py
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/registry.py
	$(PY) benchmarks/worker_overhead.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/inventory.py --rounds 3
	$(PY) benchmarks/provisioning.py
	$(PY) benchmarks/report.py

.PHONY: bench-dispatch
bench-dispatch: venv ## Dispatch decision time and submit-to-start latency, then the report
	$(PY) benchmarks/dispatch.py
	$(PY) benchmarks/submit_latency.py
	$(PY) benchmarks/report.py

.PHONY: bench-inventory
bench-inventory: venv ## Plugin against a static inventory of 5,000 hosts, then the report
	$(PY) benchmarks/inventory.py
	$(PY) benchmarks/report.py

.PHONY: bench-report
bench-report: venv ## Rewrite docs/benchmarks.md from the results already recorded
	$(PY) benchmarks/report.py

# --- the lab: Debian machines on this host (see docs/lab.md) ---------------

LAB       := $(PY) -m lab
LAB_HOSTS := .lab/inventory/cluster.yml

.PHONY: lab
lab: lab-up ## Boot the lab, provision it with site.yml, write .lab/env, submit a demo run
	$(LAB) provision

.PHONY: lab-up
lab-up: venv ## Boot the lab's machines (controller, micro, small) and ping them
	$(LAB) up
	$(BIN)/ansible -i $(LAB_HOSTS) all -m ansible.builtin.ping

.PHONY: lab-down
lab-down: venv ## Remove the lab's machines, bridge, NAT rules and mounts (safe if none)
	$(LAB) down

.PHONY: clean
clean: ## Remove the virtual environment and caches of the tools
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .ansible
