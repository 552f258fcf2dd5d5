# Flotilla developer entry points. The two that matter are in README.md:
#   make demo   - build the rig binaries (once), start hub + GPU members, run Flotilla, apply examples
#   make test   - everything CI checks: generated-file drift, lint, types, unit and e2e tests
# The Karmada peer (docs/benchmarks.md, "Flotilla beside Karmada"): real Karmada v1.18 over the rig's members.
#   make peer       - build Karmada (once, part of `make binaries`), start a rig if none runs, start the peer
#   make peer-down  - stop the peer (`make down` stops the rig and the peer)
#   make bench-peer - both control planes side by side: 200 and 2,000 Deployments, fragmented-fleet placement
# Not part of `make test` (minutes, and root): the operator image without a container daemon
# (docs/image.md):
#   make image      - build dist/image/oci and check it (entrypoint as uid 65532, read-only root)
#   make image-e2e  - ... then run it against a fresh rig: members Ready, examples placed
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv binaries lint typecheck gen gen-check unit e2e e2e-failover bench down clean image image-e2e peer peer-down bench-peer

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# The distribution was called flotilla before it became flotilla-scheduler (the PyPI name).
	@$(PY) -m pip uninstall --quiet --yes flotilla 2>/dev/null || true
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

binaries:
	bash tools/rig-bin/build.sh etcd kubernetes kwok helm training-operator promrules karmada

demo: venv binaries
	$(VENV)/bin/flotilla demo

down: venv
	$(VENV)/bin/flotilla dev down

peer: venv binaries
	@$(VENV)/bin/flotilla dev status >/dev/null 2>&1 || $(VENV)/bin/flotilla dev up
	$(PY) -m flotilla.rig.peer up

peer-down: venv
	$(PY) -m flotilla.rig.peer down

bench-peer: venv binaries
	$(PY) benchmarks/peer/bench_peer.py

gen: venv
	$(PY) -m flotilla.api.gen

gen-check: venv
	$(PY) -m flotilla.api.gen --check

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest tests/unit -q

e2e: venv binaries
	$(VENV)/bin/pytest tests/e2e -q

e2e-failover: venv binaries
	$(VENV)/bin/pytest tests/e2e/test_failover.py tests/e2e/test_failover_cases.py -q

bench: venv
	$(PY) benchmarks/bench_scheduler.py --quick
	$(PY) benchmarks/bench_placement_quality.py --quick
	$(PY) benchmarks/bench_inventory_memory.py --quick

test: venv binaries gen-check lint typecheck
	$(VENV)/bin/pytest tests -q
	$(MAKE) --no-print-directory bench

image: venv
	bash tools/image/build.sh

image-e2e: image binaries
	bash tools/image/check.sh --hub auto --examples

clean:
	rm -rf $(VENV) .rig .mypy_cache .ruff_cache .pytest_cache dist/image build/image
