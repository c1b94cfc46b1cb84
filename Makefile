# phoihop — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
SOURCES := schemas services tests bench

.PHONY: help install run test test-fast lint fmt bench eval schemas clean

help:
	@echo "make run     start broker + ingest, routing, notify, audit on loopback (SQLite)"
	@echo "make test    run the whole test suite (unit, integration, end to end)"
	@echo "make lint    ruff (lint + format check) and mypy"
	@echo "make bench   throughput / latency / memory benchmarks (not part of make test)"
	@echo "make eval    routing accuracy and duplicate precision/recall on the labelled corpus"
	@echo "make schemas regenerate JSON Schema and AsyncAPI from the event models"

$(UV):
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

.venv/.installed: $(UV) uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml
	$(UV) sync --all-packages --frozen
	@touch $@

install: .venv/.installed

run: install
	$(UV) run --frozen python -m phoihop_common.stack

test: install
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-fast: install
	$(UV) run --frozen pytest -m "not e2e" $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check $(SOURCES)
	$(UV) run --frozen ruff format --check $(SOURCES)
	$(UV) run --frozen mypy schemas/src services/common/src services/ingest/src services/routing/src services/notify/src services/audit/src

fmt: install
	$(UV) run --frozen ruff check --fix $(SOURCES)
	$(UV) run --frozen ruff format $(SOURCES)

schemas: install
	$(UV) run --frozen python -m phoihop_schemas.export schemas/generated

eval: install
	$(UV) run --frozen python -m phoihop_routing.evaluate $(EVAL_ARGS)

bench: install
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
