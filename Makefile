# `make test` and `make demo` work on a fresh machine with Python (3.11 to 3.13) and make.
# PYTHON picks the interpreter; set, it gets a venv of its own (.venv-3.13 for a 3.13):
#   make test PYTHON="$(pyenv root)/versions/3.13.0/bin/python"
PYTHON ?= python3
ifeq ($(origin PYTHON),file)
VENV   ?= .venv
else
VENV   ?= .venv-$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
endif
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# The Pythons the package supports (and declares in pyproject.toml); `make test-all` runs each.
SUPPORTED_PYTHONS := 3.11 3.12 3.13

.PHONY: demo test test-all lint typecheck pytest docs bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The dev tools are a dependency group (PEP 735): pip installs groups from 25.1 on.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e '.[cli,parquet,fastapi,dagster]' --group dev
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

## test-all: `make test` under each supported Python installed (pyenv or PATH), each in .venv-X.Y
test-all:
	@failed=""; passed=""; missing=""; \
	for version in $(SUPPORTED_PYTHONS); do \
	  found=""; \
	  for candidate in $$( (ls -d "$$(pyenv root 2>/dev/null)"/versions/$$version.*/bin/python 2>/dev/null \
	      | grep -E "/$$version\.[0-9]+/bin/python$$" | sort -V -r); command -v python$$version); do \
	    if [ "$$("$$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$$version" ]; then \
	      found="$$candidate"; break; \
	    fi; \
	  done; \
	  if [ -z "$$found" ]; then \
	    echo "test-all: Python $$version is not installed (neither pyenv nor python$$version on PATH): skipped"; \
	    missing="$$missing $$version"; continue; \
	  fi; \
	  echo "test-all: Python $$version ($$found) in .venv-$$version"; \
	  if $(MAKE) --no-print-directory test PYTHON="$$found" VENV=".venv-$$version"; then \
	    passed="$$passed $$version"; else failed="$$failed $$version"; fi; \
	done; \
	echo "test-all: passed:$${passed:- none}; failed:$${failed:- none}; not installed:$${missing:- none}"; \
	[ -z "$$failed" ] && [ -n "$$passed" ]

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
	rm -rf .venv .venv-* .mypy_cache .pytest_cache .ruff_cache .coverage .hypothesis $(DEMO_OUT) site
