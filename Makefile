# Each target sets itself up on a fresh machine: .venv, the project, then the action.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export GX_ANALYTICS_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: run test install dev lint bench clean server-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

# `make run` uses a local Prefect server (scripts/prefect_server.sh): Prefect's own
# `prefect server start --background` on 127.0.0.1:4200 on first use, left running for the UI
# and later runs (stop: make server-stop). A PREFECT_API_URL already set wins.
run: $(VENV)/.installed
	@api="$${PREFECT_API_URL:-$$(scripts/prefect_server.sh url)}"; \
	if [ -n "$$api" ]; then export PREFECT_API_URL="$$api"; fi; \
	$(BIN)/closecast run && \
	if [ -n "$$api" ]; then echo "Prefect UI: $${api%/api} (server left running; stop: make server-stop)"; fi

server-stop:
	scripts/prefect_server.sh stop

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check flows tasks tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) data/lake data/models data/validation data/staging data/work data/cache
