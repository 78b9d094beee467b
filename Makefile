# Every target bootstraps what it needs (Debian packages when root, the .venv), so each works
# as the first command on a fresh machine.
SHELL := /bin/bash
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: bootstrap up down status test bench bench-quick peer-temporal lint typecheck format clean

bootstrap:
	@scripts/bootstrap.sh

up: bootstrap  ## the whole system in the foreground, with the demo tenant; Ctrl-C stops it
	@$(VENV)/aion up

down: bootstrap  ## stop the servers of the local stack
	@$(VENV)/aion stack down

status: bootstrap
	@$(VENV)/aion stack status

test: bootstrap  ## the whole suite against the real local stack (started and stopped by it)
	@$(VENV)/aion stack install
	@$(VENV)/python -m pytest $(PYTEST_ARGS)

bench: bootstrap  ## every benchmark beside its baseline (~5 min); stop `make up` first
	@$(VENV)/aion bench

bench-quick: bootstrap  ## one short pass of every scenario (~2 min)
	@$(VENV)/aion bench --quick

peer-temporal: bootstrap  ## scenario 8's peer: the Temporal CLI built once (~5 min) and its SDK
	@scripts/peer_temporal.sh

lint: bootstrap
	@$(VENV)/ruff check .
	@$(VENV)/ruff format --check .
	@$(VENV)/mypy

format: bootstrap
	@$(VENV)/ruff format .
	@$(VENV)/ruff check --fix .

clean:
	rm -rf .aion .pytest_cache .mypy_cache .ruff_cache
