# trainyard — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TRAINYARD_HOME ?= $(HOME)/.trainyard

.PHONY: run test lint types unit pg soak bench stop clean chromium

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 (or run make PYTHON=python3)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch==2.13.0 first, pinned, so nothing ever pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## make run: install, start a local server (background) and run the demo distributed task.
run: $(STAMP)
	@$(BIN)/trainyard run examples/tf-ps-worker/task.yaml --param steps=200 --wait; \
	status=$$?; \
	echo; \
	echo "trainyard is running: open $${TRAINYARD_SERVER_URL:-http://127.0.0.1:8080} in a browser"; \
	echo "  API and its docs:  $${TRAINYARD_SERVER_URL:-http://127.0.0.1:8080}/docs"; \
	echo "  your runs:         $(BIN)/trainyard ps"; \
	echo "  one run:           $(BIN)/trainyard describe default/tf-ps-worker#1"; \
	echo "  stop the server:   make stop"; \
	exit $$status

stop: $(STAMP)
	@$(BIN)/trainyard server-stop

## make test: install the dev dependencies, lint, type-check, run the whole suite
## (SQLite, then the server and end-to-end suites again on PostgreSQL; the CLI's scheduling
## commands once only: scheduling on PostgreSQL has its own tests in the first pass).
test: $(STAMP) chromium lint types
	$(BIN)/pytest -q -m "not soak" -p no:cacheprovider -n 2 --dist loadfile
	TRAINYARD_TEST_DB=postgresql $(BIN)/pytest -q -m "not soak" -p no:cacheprovider \
		tests/e2e tests/integration/cli \
		tests/integration/server/test_lifecycle.py tests/integration/server/test_restart.py \
		--ignore=tests/integration/cli/test_cli_scheduling.py

## Debian's chromium drives the browser tests (playwright never downloads a browser here).
chromium:
	@{ command -v chromium && test -d /usr/share/fonts/truetype/dejavu; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; \
	  else \
	    echo "error: the browser tests need Debian's chromium: sudo apt-get install chromium fonts-dejavu-core"; exit 1; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

types: $(STAMP)
	$(BIN)/mypy

## make soak: long crash/restart soak tests, outside CI.
soak: $(STAMP)
	$(BIN)/pytest -q -m soak -p no:cacheprovider

## make bench: benchmarks against Ray and MLflow, installed in their own virtualenv.
.venv-bench/.installed:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q "ray[default]" mlflow httpx psutil
	touch $@

bench: $(STAMP) .venv-bench/.installed
	$(BIN)/python bench/launch.py --peer-python .venv-bench/bin/python
	$(BIN)/python bench/server_start.py --peer-python .venv-bench/bin/python
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/scheduler.py
	$(BIN)/python bench/scheduler_db.py
	$(BIN)/python bench/tracking.py --peer-python .venv-bench/bin/python
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/search.py --peer-python .venv-bench/bin/python
	$(BIN)/python bench/metrics_scale.py

clean:
	rm -rf $(VENV) .venv-bench build .mypy_cache .ruff_cache .pytest_cache
