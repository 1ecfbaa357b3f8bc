# llm-scope: `make run` starts the gateway on its embedded defaults; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup setup-runtime system-deps run test lint format bench bench-scale bench-several compat clean

# The runtime set only (requirements.lock): what `make run` and the Docker image need.
$(RUNTIME_STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(RUNTIME_STAMP)

# The development set on top (requirements-dev.lock): tests, lint, type checks.
$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.lock
	$(BIN)/pip install -q -r requirements-dev.lock
	touch $(DEV_STAMP)

setup-runtime: $(RUNTIME_STAMP)

setup: $(DEV_STAMP)

run: setup-runtime
	$(BIN)/llm-scope serve

system-deps:
	bash scripts/system-deps.sh

test: setup system-deps
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests compat bench main.py
	$(BIN)/ruff format --check src tests compat bench main.py
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format src tests compat bench main.py
	$(BIN)/ruff check --fix src tests compat bench main.py

# The benchmark: direct vs llm-scope vs LiteLLM Proxy, side by side; writes docs/benchmarks.md and a chart.
BENCH_ARGS ?= --duration 3 --repeats 2 --workers 2 --soak 2
bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Scaling across workers, everything pinned: e.g. make bench-scale SCALE_ARGS="--workers 1,2,4,8 --cores 0-7"
bench-scale: setup
	$(BIN)/python -m bench.scale $(SCALE_ARGS)
# Several instances on one PostgreSQL (a throw-away cluster): the drain rate into PostgreSQL, gateway CPU per
# call with and without DATABASE_URL, and two instances under load with every call traced once.
bench-several: setup system-deps
	$(BIN)/python -m bench.pg_drain
	$(BIN)/python -m bench.several

# Real CLIs (Claude Code, Codex, aider, llm) installed from the registries and run against the gateway.
compat: setup
	$(BIN)/python -m compat.run --require-all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
