# Two commands do all the set-up on a fresh machine (Python 3.11+ and the package registries):
#   make run    install into .venv, start the product with its embedded defaults and the demo site
#   make test   install into .venv, run ruff, mypy and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: screenshots run test lint typecheck pytest schemathesis bench bench-deadlines bench-flood bench-login bench-alarms bench-taps bench-live clean

# Says what it does: the first install is quiet pip work of about a minute.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PYTHON=python3.11")'
	@echo "==> [1/3] creating the virtual environment $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> [3/3] installing patrol and its test tools into $(VENV) (about a minute the first time; done once)"
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "==> installed"

run: $(STAMP)
	@echo "==> starting the demo: database, demo site 荔园, MQTT broker, gateway, simulated devices, API (Ctrl-C stops)"
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

# The API against its own OpenAPI (all schemathesis checks, both databases); also part of `make test`.
schemathesis: $(STAMP)
	$(BIN)/python -m pytest -q --no-cov tests/integration/test_schemathesis.py $(PYTEST_ARGS)

# The README's screenshots (docs/screenshots/): the browser tests that take them, writing there
# instead of var/screenshots/. Needs Debian's chromium and fonts-noto-cjk (.ci/run installs them).
screenshots: $(STAMP)
	PATROL_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest -q --no-cov tests/browser/test_views.py

bench: $(STAMP)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)

bench-deadlines: $(STAMP)
	$(BIN)/python bench/deadlines.py $(BENCH_ARGS)

bench-flood: $(STAMP)
	$(BIN)/python bench/flood.py $(BENCH_ARGS)

bench-login: $(STAMP)
	$(BIN)/python bench/login_flood.py $(BENCH_ARGS)

bench-alarms: $(STAMP)
	$(BIN)/python bench/alarm_latency.py $(BENCH_ARGS)

bench-taps: $(STAMP)
	$(BIN)/python bench/tap_verdict.py $(BENCH_ARGS)

bench-live: $(STAMP)
	$(BIN)/python bench/live_clients.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
