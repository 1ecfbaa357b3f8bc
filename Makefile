# llm-scope: `make run` starts the gateway on its embedded defaults; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps run test lint format bench bench-several compat clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/llm-scope serve

system-deps:
	bash scripts/system-deps.sh

test: setup system-deps
	$(BIN)/pytest -q

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
