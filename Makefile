# The two commands a developer needs: `make test` and `make run` (see README.md).
# Every target installs what it needs into .venv on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# One target dir for tests, cargo-lambda and the SAM build, so nothing compiles twice.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PATH := $(BIN):$(PATH)
export MOTO_SERVER := $(BIN)/moto_server

.PHONY: help test fmt lint unit smoke run venv clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(STAMP) ## Install the pinned tools (moto, cargo-lambda, zig) into .venv

test: $(STAMP) fmt lint unit smoke ## Everything: format, lints, all tests, cargo-lambda smoke test

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit: $(STAMP) ## All cargo tests (adapters against a real moto server)
	cargo test --workspace --locked

smoke: $(STAMP) ## Invoke refund-api with every events/ fixture under `cargo lambda watch`
	scripts/smoke-invoke.sh

run: ## The local stack (arrives with the local-stack issue)
	@echo "make run: the local stack (moto SQS, gateway emulator, cargo lambda watch, event source)"
	@echo "is not built yet; until then see README.md, 'Try it by hand'."
	@exit 1

clean: ## Remove build output and the tools
	rm -rf target $(VENV) .aws-sam
