# soundcheck: `make demo` runs one track end to end, `make test` runs every test.
# Needs only Python 3.11+ and a C compiler; everything else is installed here.

SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv test demo lint format clean bench-queue bench-analysis bench-import bench-pipeline bench-storm bench-console layer package

help:
	@echo "make demo   - set up and analyse one track through the HTTP API, queue, consumer and Postgres"
	@echo "make test   - set up and run the whole test suite"
	@echo "make lint   - ruff check and format check"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is required" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'pip>=23.1,<26.3'  # chalice 1.34 declares pip<26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m chalicelib.analysis.native build
	@touch $@

# The analysis' C kernels (chalicelib/analysis/native.py), rebuilt when a source changes.
NATIVE := chalicelib/analysis/kernels/_soundcheck_dsp.$(shell uname -m).so
$(NATIVE): $(wildcard chalicelib/analysis/kernels/*.c) chalicelib/analysis/native.py | $(STAMP)
	$(BIN)/python -m chalicelib.analysis.native build

venv: $(STAMP) $(NATIVE)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# FILE=path/to/track.wav analyses your own track; GENRE=techno picks the targets.
# Both reach the command through the environment, never through the shell's parser,
# so names with spaces, brackets, quotes or accents arrive as they are.
export FILE GENRE
demo: venv
	$(BIN)/soundcheck demo $${FILE:+"$$FILE"} $${GENRE:+--genre "$$GENRE"}

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .soundcheck .pytest_cache .ruff_cache .hypothesis

# --- benchmarks (print numbers; nothing asserted) ---
bench-queue: $(STAMP)
	$(BIN)/python -P bench/queue.py

bench-analysis: venv
	@command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq ffmpeg >/dev/null; } || echo "ffmpeg could not be installed: its row stays empty"
	$(BIN)/python -P bench/analysis.py $(BENCH_ARGS)

bench-import: $(STAMP)
	@$(MAKE) -s package STAGES=prod OUT=out/bench-import >/dev/null
	$(BIN)/python -P bench/imports.py --package out/bench-import/prod/cloudformation/deployment.zip

bench-pipeline: $(STAMP)
	$(BIN)/python -P bench/pipeline.py

# N submissions from C clients through HTTP, direct Postgres and through PgBouncer (pool 10)
bench-storm: $(STAMP)
	$(BIN)/python -P bench/storm.py $(BENCH_ARGS)

# the admin console's routes against a table of 10,000 jobs (REDIS_URL / DATABASE_URL)
bench-console: $(STAMP)
	$(BIN)/python -P bench/console.py $(BENCH_ARGS)

# --- AWS (offline) ---
# ziglang: the cross compiler of our C kernels for the other CPU (arm64 on x86_64)
layer: $(STAMP)
	$(BIN)/python -m pip install --quiet 'ziglang>=0.13,<1'
	$(BIN)/python layers/build.py

# CloudFormation (SAM) and Terraform for each stage, under $(OUT)/<stage>/; no AWS
# account needed. The merge template names the functions as `chalice deploy` does.
OUT ?= out
STAGES ?= dev prod
package: $(STAMP)
	@set -e; export AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}; \
	for stage in $(STAGES); do \
		rm -rf $(OUT)/$$stage; \
		$(BIN)/chalice package --stage $$stage --merge-template .chalice/merge-$$stage.json \
			$(OUT)/$$stage/cloudformation; \
		$(BIN)/chalice package --stage $$stage --pkg-format terraform $(OUT)/$$stage/terraform; \
		cp .chalice/terraform-override-$$stage.tf.json $(OUT)/$$stage/terraform/chalice_override.tf.json; \
		if [ -f .chalice/terraform-variables-$$stage.tf.json ]; then \
			cp .chalice/terraform-variables-$$stage.tf.json $(OUT)/$$stage/terraform/variables.tf.json; fi; \
	done; \
	ls -l $(OUT)/*/*/*
