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
# pip keeps no second copy of every wheel (a CI disk once filled up during the install).
export PIP_NO_CACHE_DIR := 1
# A CI run compiles each crate once: incremental state would only take disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: help test fmt lint unit smoke e2e schemathesis fuzz chaos bench template run refund venv build deploy deploy-ci dlq redrive events clean

# check-jsonschema lives in its own venv: it needs newer click and ruamel.yaml than sam-cli.
CHECK_JSONSCHEMA := $(VENV)/check-jsonschema/bin/check-jsonschema
# Deployment environment, as named in samconfig.toml.
ENV ?= staging
STACK_NAME ?= ticket-refunds-$(ENV)

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	rustup component add rustfmt clippy
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHECK_JSONSCHEMA): $(STAMP)
	python3 -m venv $(VENV)/check-jsonschema
	$(VENV)/check-jsonschema/bin/pip install --quiet --disable-pip-version-check check-jsonschema==0.39.0

venv: $(STAMP) ## Install the pinned tools (moto, cargo-lambda, zig) into .venv

test: $(STAMP) fmt lint template unit smoke e2e ## Everything: format, lints, template checks, all tests, smoke and end-to-end tests

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit: $(STAMP) ## All cargo tests (adapters against a real moto server)
	cargo test --workspace --locked

smoke: $(STAMP) ## Invoke refund-api with every events/ fixture under `cargo lambda watch`
	scripts/smoke-invoke.sh

template: $(STAMP) $(CHECK_JSONSCHEMA) ## Lint template.yaml (with serverless rules), the workflow, and test the template's invariants
	cfn-lint -t template.yaml --append-rules cfn_lint_serverless.rules
	$(CHECK_JSONSCHEMA) --builtin-schema vendor.github-workflows .github/workflows/*.yml
	pytest -q tests/template

build: $(STAMP) ## sam build: both functions for arm64 with cargo-lambda (release)
	rustup target add aarch64-unknown-linux-gnu
	sam build --beta-features

deploy: $(STAMP) ## sam deploy to ENV (staging|prod); guided the first time a stack is created
	@if python3 -c 'import boto3,sys; boto3.client("cloudformation").describe_stacks(StackName=sys.argv[1])' $(STACK_NAME) 2>/dev/null; \
	then sam deploy --config-env $(ENV); \
	else sam deploy --guided --config-env $(ENV) --stack-name $(STACK_NAME); fi

# Deploying from CI (.github/workflows/deploy.yml). These targets run only the tools that
# requirements-deploy.txt locks (every file hash-checked), from a venv of their own, and install
# nothing themselves: CI runs `make deploy-venv` before it assumes the AWS role. Values from
# outside (SAM_PARAMETERS, CHANGE_SET_ID) reach the shell as environment variables, quoted;
# make never pastes them into a command line.
.PHONY: deploy-venv changeset execute-changeset requirements-deploy
DEPLOY_VENV ?= $(VENV)/deploy
DEPLOY_BIN = $(abspath $(DEPLOY_VENV))/bin
AWS_CLI ?= aws
# Where `make changeset` writes the change set's ARN (an empty file: nothing to change).
CHANGE_SET_FILE ?= .aws-sam/change-set-id
PIP_TOOLS_VENV ?= $(VENV)/pip-tools
define deploy-venv-check
@test -x '$(DEPLOY_BIN)/sam' || { echo "no sam in $(DEPLOY_VENV): run 'make deploy-venv' first (CI does, before it assumes the AWS role)" >&2; exit 1; }
endef
# A --parameter-overrides on the command line replaces samconfig.toml's parameter_overrides for
# ENV, so the deploy targets pass those first and SAM_PARAMETERS after (it wins on a shared key),
# each as one word: the shell array `overrides`.
SAM_OVERRIDES = overrides=(); \
	config=$$('$(DEPLOY_BIN)/python' -c 'import sys, tomllib; print(tomllib.load(open("samconfig.toml", "rb")).get(sys.argv[1], {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", ""))' '$(ENV)'); \
	[ -z "$$config" ] || overrides+=("$$config"); \
	case "$${SAM_PARAMETERS:-}" in \
	  -*) echo "SAM_PARAMETERS must be Key=Value pairs, not an option" >&2; exit 1;; \
	  "") ;; \
	  *) overrides+=("$$SAM_PARAMETERS");; \
	esac

deploy-venv: ## Install requirements-deploy.txt (hash-checked, wheels only) into .venv/deploy for the deploy targets
	python3 -m venv --clear '$(DEPLOY_VENV)'
	'$(DEPLOY_BIN)/pip' install --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary :all: -r requirements-deploy.txt
	'$(DEPLOY_BIN)/pip' check
	'$(DEPLOY_BIN)/sam' --version

deploy-ci: ## Non-interactive deploy of an existing build to ENV=staging (the GitHub workflow); never prod
	@[ '$(ENV)' != prod ] || { echo "deploy-ci does not deploy prod: make changeset ENV=prod, review it, then make execute-changeset" >&2; exit 1; }
	$(deploy-venv-check)
	@$(SAM_OVERRIDES); \
	set -x; '$(DEPLOY_BIN)/sam' deploy --config-env '$(ENV)' --no-confirm-changeset $${overrides[@]:+--parameter-overrides "$${overrides[@]}"}

changeset: ## Create, not execute, ENV's change set from an existing build; prints it and writes its ARN to CHANGE_SET_FILE
	$(deploy-venv-check)
	@mkdir -p "$$(dirname '$(CHANGE_SET_FILE)')"; : > '$(CHANGE_SET_FILE)'
	@$(SAM_OVERRIDES); \
	set -x; '$(DEPLOY_BIN)/sam' deploy --config-env '$(ENV)' --no-execute-changeset $${overrides[@]:+--parameter-overrides "$${overrides[@]}"} | tee '$(CHANGE_SET_FILE).log'
	@id=$$(grep -oE 'arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:[0-9]{12}:changeSet/[^[:space:]]+' '$(CHANGE_SET_FILE).log' | tail -n 1 || true); \
	if [ -z "$$id" ]; then echo "No change set: the $(ENV) stack is up to date."; exit 0; fi; \
	printf '%s\n' "$$id" > '$(CHANGE_SET_FILE)'; \
	set -x; $(AWS_CLI) cloudformation describe-change-set --change-set-name "$$id" --output table \
	  --query '{Stack:StackName,Status:Status,Execution:ExecutionStatus,Changes:Changes[].ResourceChange.{Action:Action,Resource:LogicalResourceId,Type:ResourceType,Replacement:Replacement}}'

execute-changeset: ## Execute exactly the change set CHANGE_SET_ID (an ARN from make changeset) on ENV's stack, and wait for it
	@[[ "$${CHANGE_SET_ID:-}" =~ ^arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:[0-9]{12}:changeSet/[A-Za-z][A-Za-z0-9-]*/[0-9a-f-]{36}$$ ]] \
	  || { echo "CHANGE_SET_ID must be a change set's ARN (make changeset writes it to $(CHANGE_SET_FILE))" >&2; exit 1; }
	@set -x; \
	info=$$($(AWS_CLI) cloudformation describe-change-set --change-set-name "$$CHANGE_SET_ID" \
	  --query '[StackName,StackId,ExecutionStatus]' --output text); \
	read -r name stack execution <<< "$$info"; \
	[ "$$name" = '$(STACK_NAME)' ] || { echo "the change set is for stack $$name, not $(STACK_NAME)" >&2; exit 1; }; \
	[ "$$execution" = AVAILABLE ] || { echo "the change set is $$execution, not AVAILABLE: create a new one" >&2; exit 1; }; \
	status=$$($(AWS_CLI) cloudformation describe-stacks --stack-name "$$stack" --query 'Stacks[0].StackStatus' --output text); \
	$(AWS_CLI) cloudformation execute-change-set --change-set-name "$$CHANGE_SET_ID"; \
	if [ "$$status" = REVIEW_IN_PROGRESS ]; then wait=stack-create-complete; else wait=stack-update-complete; fi; \
	$(AWS_CLI) cloudformation wait "$$wait" --stack-name "$$stack"; \
	$(AWS_CLI) cloudformation describe-stacks --stack-name "$$stack" --query 'Stacks[0].[StackName,StackStatus]' --output text

requirements-deploy: ## Re-lock requirements-deploy.txt (hashes) from requirements-deploy.in; PIP_COMPILE_FLAGS=--upgrade refreshes
	python3 -m venv '$(PIP_TOOLS_VENV)'
	'$(PIP_TOOLS_VENV)/bin/pip' install --quiet --disable-pip-version-check pip-tools==7.6.2
	env -u PIP_FIND_LINKS '$(PIP_TOOLS_VENV)/bin/pip-compile' --quiet --generate-hashes --allow-unsafe --no-strip-extras \
	  --no-emit-index-url --no-emit-find-links $(PIP_COMPILE_FLAGS) --output-file=requirements-deploy.txt requirements-deploy.in

# The administrator `make run` writes (its ready line's admin_credentials; under STRICT_IAM=1
# no other credentials are taken), for the tools that read its moto. Empty key variables leave
# the file to the SDK.
LOCAL_ADMIN := $(or $(LOCAL_STACK_LOGS),$(CURDIR)/target/local-stack)/admin-credentials
LOCAL_TOOLS := events

# The queues come from the stack's outputs, in AWS as locally: `make run` deploys
# template.yaml as ticket-refunds-local (scripts/local_deploy.py STACK), ENV=local's STACK_NAME.
DLQ_ARGS = --stack $(STACK_NAME)
# ENV=local points dlq/redrive at `make run`'s moto, which has no message-move task.
ifeq ($(ENV),local)
override STACK_NAME := ticket-refunds-local
REDRIVE_ARGS := --copy
dlq redrive: export AWS_ENDPOINT_URL := http://127.0.0.1:$(or $(SQS_PORT),4566)
dlq redrive: export AWS_DEFAULT_REGION := us-east-1
LOCAL_TOOLS += dlq redrive
endif
$(LOCAL_TOOLS): export AWS_SHARED_CREDENTIALS_FILE := $(LOCAL_ADMIN)
$(LOCAL_TOOLS): export AWS_ACCESS_KEY_ID :=
$(LOCAL_TOOLS): export AWS_SECRET_ACCESS_KEY :=
$(LOCAL_TOOLS): export AWS_SESSION_TOKEN :=
# The file's one profile, and no ~/.aws/config (an SSO or role profile there would win).
$(LOCAL_TOOLS): export AWS_PROFILE := default
$(LOCAL_TOOLS): export AWS_CONFIG_FILE := /dev/null
$(LOCAL_TOOLS): export AWS_REGION := us-east-1

dlq: $(STAMP) ## Show what is in ENV's dead-letter queue (ENV=local: make run's), with each message's reason
	python3 scripts/dlq.py show $(DLQ_ARGS)

redrive: $(STAMP) ## Move ENV's dead-letter queue back to the refund queue
	python3 scripts/dlq.py redrive $(DLQ_ARGS) $(REDRIVE_ARGS)

# The local stack's copy of the bus (its RefundEvents queue), at 127.0.0.1:$(SQS_PORT) as for dlq ENV=local.
events: $(STAMP) ## Print the events `make run`'s worker published (its RefundEvents queue), oldest first, without consuming them
	python3 scripts/events.py

e2e: $(STAMP) ## End-to-end tests on the local stack, on free ports
	pytest -q tests/e2e

schemathesis: $(STAMP) ## The HTTP API against openapi.yaml on the local stack (also part of e2e)
	pytest -q tests/e2e/test_schemathesis.py

FUZZ_CASES ?= 5000
fuzz: ## Fixed-length proptest fuzzing of the API's requests (PUT, GETs, hostile JWT claims) and the worker's record decoding
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --locked -p refund-worker --test fuzz_records
	PROPTEST_CASES=$$(( $(FUZZ_CASES) * 4 )) cargo test --locked -p refund-api --test api -- \
	  never_panics_and_always_answers_in_contract gets_never_panic_and_always_answer_in_contract any_claims_get_an_answer_in_contract

CHAOS_FLAGS ?=
chaos: $(STAMP) fuzz ## 500 refunds under upstream faults, duplicate deliveries and worker SIGKILLs; checks and prints the invariants
	python3 scripts/chaos.py $(CHAOS_FLAGS)

bench: $(STAMP) ## Release builds measured against a hello-world Lambda: cold start, size, concurrency, overhead, end to end; writes docs/BENCHMARKS.md
	rustup target add aarch64-unknown-linux-gnu
	python3 scripts/bench.py

run: $(STAMP) ## The local stack on loopback: template.yaml deployed into moto, gateway emulator, both functions, event source (STRICT_IAM=1: moto enforces IAM)
	python3 scripts/local_stack.py

refund: ## Send one refund to the running local stack and show what the gateway emulator received
	@ticket=$$(python3 -c 'import uuid; print(uuid.uuid4())'); \
	echo "PUT /ticket-refund/$$ticket"; \
	curl -s -i -X PUT -H "Correlation-ID: make-refund-$$ticket" http://127.0.0.1:$${API_PORT:-9000}/ticket-refund/$$ticket; echo; \
	sleep 3; \
	echo "receipts voided:"; curl -s http://127.0.0.1:$${GATEWAY_PORT:-8888}/receipts-api/voided; echo; \
	echo "payments refunded:"; curl -s http://127.0.0.1:$${GATEWAY_PORT:-8888}/payments-api/refunds; echo

clean: ## Remove build output and the tools
	rm -rf target $(VENV) .aws-sam
