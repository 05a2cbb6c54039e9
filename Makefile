# One runner for the project. `make run` and `make test` build the virtualenv themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1

PORT ?= 8000

.PHONY: help setup run serve serve-demo test test-fast check format bench docs clean stack-up stack-down

help:  ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS=":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## Create or update the virtualenv (.venv)

run: $(STAMP)  ## Run the whole retraining loop on demo data (again: a new batch each run)
	$(BIN)/python -m flows.demo

serve: $(STAMP)  ## Scoring service on 127.0.0.1:$(PORT) (follows promotions; logs predictions)
	$(BIN)/retrain serve --port $(PORT)

serve-demo: $(STAMP)  ## Serve demo traffic, add its labels, and retrain on them
	$(BIN)/python -m deployments.scoring.demo

test: $(STAMP)  ## Run the whole test suite (unit, flow, end-to-end)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## Run the tests without the slow and end-to-end ones
	$(BIN)/python -m pytest -m "not slow and not e2e"

check: $(STAMP)  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy model tasks flows deployments bench

format: $(STAMP)  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(STAMP)  ## Build the manual (docs/) with mkdocs --strict into var/site
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

bench: $(STAMP)  ## Run every benchmark; JSON goes to bench/results/
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

stack-up: $(STAMP)  ## Local Prefect server (RETRAIN_PREFECT_PORT, default 4200) + pool + deployments + worker
	bash deployments/stack-up.sh

stack-down:  ## Cancel the runs in flight, then stop what stack-up started
	bash deployments/stack-down.sh

clean:  ## Empty the working root var/ (data, registry, reports, Prefect home)
	find var -mindepth 1 -maxdepth 1 ! -name .gitignore -exec rm -rf {} +
