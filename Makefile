# phoihop — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
PACKAGES := phoihop_schemas phoihop_common phoihop_ingest phoihop_routing phoihop_notify phoihop_audit \
	phoihop_embedded phoihop_testkit
SOURCES := schemas services embedded testkit tests bench tools

.PHONY: help install run test test-fast lint fmt bench profile eval schemas clean

help:
	@echo "make run     start broker + ingest, routing, notify, audit on loopback (SQLite)"
	@echo "make test    run the whole test suite (unit, integration, end to end)"
	@echo "make lint    ruff (lint + format check), mypy and the import-cycle check"
	@echo "make bench   throughput / latency ladder / memory benchmarks (not part of make test)"
	@echo "make profile py-spy of every service under 50/s, CPU and broker records per recommendation"
	@echo "make eval    routing accuracy and duplicate precision/recall on the labelled corpus"
	@echo "             (EVAL_ARGS=--via-bus: through the running bus, python -m phoihop_testkit.evaluate_bus)"
	@echo "make schemas regenerate JSON Schema and AsyncAPI from the event models"

$(UV):
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

.venv/.installed: $(UV) uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml
	$(UV) sync --all-packages --frozen
	@touch $@

install: .venv/.installed

run: install
	$(UV) run --frozen python -m phoihop_embedded.stack

# one process by default; PYTEST_WORKERS=2: two pytest-xdist workers, one test file each at a
# time (~17 instead of ~20 minutes on 2 cores, but the doubled load can push the schemathesis
# run past its bound)
PYTEST_WORKERS ?= 0
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

test: install
	$(UV) run --frozen pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install
	$(UV) run --frozen pytest $(XDIST) -m "not e2e" $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check $(SOURCES)
	$(UV) run --frozen ruff format --check $(SOURCES)
	$(UV) run --frozen mypy $(addprefix -p ,$(PACKAGES))
	$(UV) run --frozen mypy tools
	$(UV) run --frozen python tools/check_cycles.py
	$(UV) run --frozen python tools/check_sizes.py

fmt: install
	$(UV) run --frozen ruff check --fix $(SOURCES)
	$(UV) run --frozen ruff format $(SOURCES)

schemas: install
	$(UV) run --frozen python -m phoihop_schemas.export schemas/generated

# EVAL_ARGS containing --via-bus: the test kit starts the whole bus (phoihop_testkit.evaluate_bus)
EVAL_MODULE = $(if $(filter --via-bus,$(EVAL_ARGS)),phoihop_testkit.evaluate_bus,phoihop_routing.evaluate)
eval: install
	$(UV) run --frozen python -m $(EVAL_MODULE) $(EVAL_ARGS)

bench: install
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

# PROFILE_ARGS e.g. "--profile-rate 50 --profile-seconds 30" (or --quick)
profile: install
	$(UV) run --frozen python -m bench --only profile $(PROFILE_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
