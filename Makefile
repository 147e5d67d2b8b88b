# Two commands do all the set-up on a fresh machine (Python 3.11+ and the package registries):
#   make run    install into .venv, start the product with its embedded defaults and the demo site
#   make test   install into .venv, run ruff, mypy and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench bench-deadlines clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/patrol demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check core storage gateway server devices app tests bench
	$(BIN)/ruff format --check core storage gateway server devices app tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Also measures coverage ([tool.coverage] in pyproject.toml), prints the summary and fails under its floor.
# A subset without the floor: make pytest PYTEST_ARGS='--no-cov tests/unit'
pytest: $(STAMP)
	$(BIN)/python -m pytest -q --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)

bench-deadlines: $(STAMP)
	$(BIN)/python bench/deadlines.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
