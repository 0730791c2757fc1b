# `make test` and `make demo` work on a fresh machine with Python 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_STAMP := $(VENV)/.installed-demo
DEMO_OUT   ?= demo-output

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,parquet]'
	touch $(DEMO_STAMP)

## demo: back up 90 days of both reports and the recordings' audio from the bundled simulator to Parquet, then summarise
demo: $(DEMO_STAMP)
	rm -rf $(DEMO_OUT)
	$(BIN)/voiceapi backfill all --demo --format parquet --audio --out $(DEMO_OUT)

## test: lint, format check, import contracts, strict typing, and the tests with branch coverage
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# Examples and benchmarks are scripts that import their folder's helpers as top-level modules.
typecheck: $(STAMP)
	$(BIN)/mypy --strict voiceapi_async
	MYPYPATH=examples $(BIN)/mypy --strict examples
	MYPYPATH=benchmarks $(BIN)/mypy --strict benchmarks
	$(BIN)/mypy tests

# pytest exits 5 when it collects nothing; make treats every non-zero status as failure.
pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

## bench: run the side-by-side benchmarks and write their tables to benchmarks/results/
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,fastapi]'
	$(BIN)/python benchmarks/bench_convert.py
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_client.py
	$(BIN)/python benchmarks/bench_audio.py
	$(BIN)/python benchmarks/bench_fastapi_memory.py
	$(BIN)/python benchmarks/bench_shared_quota.py

## mutation: mutation-test the redaction and protocol modules (slow; not part of `make test`)
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf mutants
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage .hypothesis $(DEMO_OUT)
