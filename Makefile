# `make test` and `make demo` work on a fresh machine with Python 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest docs bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_STAMP := $(VENV)/.installed-demo
DEMO_OUT   ?= demo-output

# duckdb: the demo ends by printing a DuckDB line that counts its files' records.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,parquet]' 'duckdb>=1.1'
	touch $(DEMO_STAMP)

## demo: back up 90 days of both reports and the recordings' audio from the bundled simulator (run in a process of its own) to Parquet, summarise, and print where the files are with a DuckDB line that reads them
demo: $(DEMO_STAMP)
	rm -rf $(DEMO_OUT)
	$(BIN)/voiceapi backfill all --demo --format parquet --audio --out $(DEMO_OUT)

## test: lint, format check, import contracts, strict typing, the docs build, and the tests with branch coverage
test: lint typecheck docs pytest

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

DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet --group docs
	touch $(DOCS_STAMP)

## docs: build the documentation site into site/ (strict: any warning, or a page left out of the nav, fails)
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## bench: run the side-by-side benchmarks and write their tables to benchmarks/results/
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,fastapi]'
	$(BIN)/python benchmarks/bench_convert.py
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_client.py
	$(BIN)/python benchmarks/bench_audio.py
	$(BIN)/python benchmarks/bench_quota.py
	$(BIN)/python benchmarks/bench_fastapi_memory.py
	$(BIN)/python benchmarks/bench_shared_quota.py

## mutation: mutation-test the redaction and protocol modules (slow; not part of `make test`)
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf mutants
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage .hypothesis $(DEMO_OUT) site
