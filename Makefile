# make run: serve on 127.0.0.1:8080 with data under data/; make test: the whole suite.
# Both build the virtualenv first, so they work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all install run serve test test-fast lint fmt bench fuzz stress clean dist check-dist

all: lint test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/importapi-lite serve --dev-token --log-level info

serve: run

test: $(STAMP)
	$(BIN)/pytest

# The inner loop, under a minute: everything but the slow kinds (their markers: setup.cfg).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not clients and not browser and not crash and not fuzz and not load and not serve"

# The declared floors, tested: each direct dependency pinned to its pyproject.toml minimum in
# .venv-floors (rebuilt when the floors change), then the whole suite, `make lint` and the audit
# tools there (.ci/floors.py). About 5 minutes from scratch; .ci/run runs it after `make test`.
.PHONY: test-floors
test-floors:
	$(PYTHON) .ci/floors.py

# The sdist and the wheel, into dist/. `python -m build` (PyPA's frontend) builds the sdist, then
# the wheel from the unpacked sdist in an isolated environment, so a file the sdist leaves out is
# missing from the wheel too, and check-dist sees it. Without the egg-info of an earlier build
# (the editable install's too): setuptools adds the files its SOURCES.txt lists to the sdist, which
# would hide a file pyproject.toml does not name.
dist: $(STAMP)
	rm -rf dist build importapi_lite.egg-info
	$(BIN)/python -m build --outdir dist .

# The wheel as a user installs it: a fresh virtualenv (not editable), run from outside the
# repository: serve, a token, a push read back, the dashboard's files and the OpenAPI document
# (.ci/check-wheel.py, stdlib only; about 30 s). .ci/run runs it after `make test`.
check-dist: dist
	$(PYTHON) .ci/check-wheel.py

lint: $(STAMP)
	$(BIN)/ruff format --check importapi_lite tests bench
	$(BIN)/ruff check importapi_lite tests bench
	$(BIN)/mypy
	# The layers of docs/architecture.md, as .importlinter's contracts say them.
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format importapi_lite tests bench
	$(BIN)/ruff check --fix importapi_lite tests bench

# Figures, not tests (about 10 minutes; `bench/ingest.py --quick` is a 2-minute smoke run): the
# server against bare SQLite and a bare aiohttp handler, medians and ratios beside issue 5's targets.
bench: $(STAMP)
	$(BIN)/python bench/ingest.py --runs 5

# Property-based fuzzing of push, validate and batch, the long form: 100,000+ requests (`make test`
# runs the short one, ~3,400 cases). The summary at the end says how many ran, and their answers.
fuzz: $(STAMP)
	IMPORTAPI_LITE_FUZZ=deep $(BIN)/pytest -q -p no:cacheprovider tests/test_fuzz_endpoints.py

# The crash test: 25 SIGKILLs (and 5 SIGTERMs) under concurrent load; nothing acknowledged is lost.
# Then the same on PostgreSQL, which is restarted too, under load and while the server is down.
# Then the load test: 64 senders for 60 s; expected answers only, newest acked versions stored,
# RSS bounded (figures: req/s, records/s, p50/p99 by endpoint, peak RSS).
stress: $(STAMP)
	$(BIN)/python bench/crash.py --kills 25 --sigterms 5 --senders 8
	$(BIN)/python bench/crash.py --destination postgresql --kills 10 --sigterms 2 --pg-restarts 5 --senders 8
	$(BIN)/python bench/load.py --senders 64 --seconds 60

# Security: bandit reads the package for risky code (its skips and their reasons: pyproject.toml
# [tool.bandit]); pip-audit looks each installed distribution up in PyPI's advisory data and fails
# on a known vulnerability. A distribution it cannot look up is listed as skipped, not failed.
audit: $(STAMP)
	$(BIN)/bandit -q -c pyproject.toml -r importapi_lite
	$(BIN)/pip-audit --skip-editable --progress-spinner off

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
