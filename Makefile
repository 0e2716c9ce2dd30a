# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PYTHONPATH := $(CURDIR)
# Python caches what it compiles (__pycache__, git-ignored). These machines set
# PYTHONDONTWRITEBYTECODE=1, so every process compiled SQLAlchemy, Celery, Streamlit and the
# app from source again at each start: collecting the tests took 10 s of CPU in each xdist
# worker instead of 4, a worker's imports 1.1 s instead of 0.4 (measured 2026-12-05).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run run-prod test test-fast test-browser-stress lint format venv dev-venv migrate seed bench clean

# uv installs the pinned requirements from PyPI in seconds where pip took a minute and a half
# (most of it compiling every module to bytecode; Python compiles what is imported instead).
# Without uv (no network to PyPI, say) pip does the same from the machine's indexes.
UV_VERSION := 0.13.9
INSTALL = $(BIN)/uv pip install -q --python $(BIN)/python

$(BIN)/uv:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION) || true

$(BIN)/.installed: requirements.txt | $(BIN)/uv
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(INSTALL) -r requirements.txt || $(BIN)/pip install -q -r requirements.txt
	touch $@

$(BIN)/.dev-installed: requirements.txt requirements-dev.txt $(BIN)/.installed
	$(INSTALL) -r requirements-dev.txt || $(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed
dev-venv: $(BIN)/.dev-installed

migrate: venv
	$(BIN)/python -m core migrate

# Starts Streamlit (:8501), the webhook (:8000) and the worker with beat under honcho.
run: venv
	mkdir -p data
	$(BIN)/python -m core migrate
	$(BIN)/python -m core seed-demo --if-empty
	$(BIN)/honcho start -f Procfile

# Production mode on PostgreSQL and Redis (DATABASE_URL, BROKER_URL, RESULT_BACKEND): refuses
# SQLite and the embedded broker, migrates, then runs Procfile.prod under honcho: Streamlit,
# the public service (WEB_CONCURRENCY uvicorn workers), WORKER_PROCESSES Celery workers and
# one beat. See the README's "Production" section.
run-prod: venv
	$(BIN)/python -m core run-prod

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: dev-venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Four pytest-xdist workers on 2 cores: the suite waits on processes, browsers and
# PostgreSQL much of the time, and two workers kept about one core busy (measured
# 2026-12-05 in a fresh clone: 8 min 18 s with -n 2, 7 min 28 s with -n 4). Tests sharing
# Redis run in one group. The in-process inner loop keeps one worker per core.
PARALLEL ?= -n 4 --dist loadgroup
FAST_PARALLEL ?= -n 2 --dist loadgroup

# mypy (about 14 s of CPU from a fresh clone) runs beside pytest, whose workers spend most
# of the time waiting for browsers and processes; its report is printed after pytest's.
test: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@mypy_log=$$(mktemp); $(BIN)/mypy >$$mypy_log 2>&1 & mypy_pid=$$!; \
	$(BIN)/python -m pytest $(PARALLEL) --durations=25; status=$$?; \
	wait $$mypy_pid; mypy_status=$$?; echo "== mypy"; cat $$mypy_log; rm -f $$mypy_log; \
	[ $$status -eq 0 ] && [ $$mypy_status -eq 0 ]

# The inner loop: SQLite only, no processes started, no browser.
test-fast: dev-venv
	env -u TEST_DATABASE_URL -u TEST_REDIS_URL $(BIN)/python -m pytest $(FAST_PARALLEL) -m "not slow and not browser" -r fE

# The browser tests 20 times in a row with a busy loop on every core (issue 21: a link
# must open its page and the first sign-in click must count on a busy server).
STRESS_RUNS ?= 20
test-browser-stress: dev-venv
	@passed=0; for i in $$(seq 1 $(STRESS_RUNS)); do \
	  echo "== browser stress run $$i/$(STRESS_RUNS)"; \
	  $(BIN)/python -m pytest -m browser --cpu-hog -q || { echo "stress: run $$i failed after $$passed passed"; exit 1; }; \
	  passed=$$((passed + 1)); \
	done; echo "stress: $$passed/$(STRESS_RUNS) runs passed"

bench: dev-venv
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf data/outbox data/*.db data/*.db-* data/broker data/celerybeat-schedule*
