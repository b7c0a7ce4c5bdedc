# genline: the two commands are `make demo` and `make test`; both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
GL     := $(BIN)/genline
STAMP  := $(VENV)/.genline-installed
OUT    ?= out
export GENLINE_HOME ?= $(CURDIR)/.genline

TRITON_URL ?= 127.0.0.1:8001
PRESET     ?= default
# VERBOSE=1: echo recipe lines and show the full Dagster/kfp.local output.
Q := $(if $(VERBOSE),,@)

.PHONY: setup lock demo test test-fast lint format bench ui stop clean image k8s-validate

# Installs come from the committed locks (exact versions + sha256 hashes, tested together):
# requirements.lock (genline's dependencies with the dev extras) and requirements-uv.lock (the
# installer, uv, itself). genline is installed editable on top without resolving anything.
# uv does not read pip.conf: the local CPU torch wheel is passed as --find-links when present.
UV_VERSION := 0.13.9
UV         := $(BIN)/uv
WHEELS     ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS))
# INSTALLER=pip installs the same lock with pip (slower; no uv needed). pip gets --no-deps: in
# --require-hashes mode it refuses an extra (gql[requests]) that is not pinned under that very
# spelling, and the lock is complete anyway (tests/unit/test_lock.py walks its closure).
INSTALLER  ?= uv

# Create the venv and install the locked set; quick when nothing changed.
setup: $(STAMP)
$(STAMP): requirements.lock pyproject.toml $(if $(filter uv,$(INSTALLER)),$(UV))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the locked environment (requirements.lock, $(INSTALLER)) into $(VENV)"
ifeq ($(INSTALLER),uv)
	$(Q)$(UV) pip install -q --python $(BIN)/python --require-hashes $(FIND_LINKS) -r requirements.lock
	$(Q)$(UV) pip install -q --python $(BIN)/python --no-deps -e .
else
	$(Q)$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(Q)$(BIN)/python -m pip install -q --no-deps -e .
endif
	@touch $(STAMP)

$(UV): requirements-uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(Q)$(BIN)/python -m pip install -q --require-hashes -r requirements-uv.lock
	@touch $(UV)

# Re-resolve pyproject.toml into the locks. Keeps the current pins where they still satisfy
# pyproject (uv reads the old lock as preferences); UPGRADE=1 moves everything to the newest.
# Then run `make setup test` and commit the lock with the tests' result.
lock: $(UV)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
	  $(FIND_LINKS) $(if $(UPGRADE),--upgrade) --custom-compile-command 'make lock' \
	  -q -o requirements.lock
	echo 'uv==$(UV_VERSION)' | $(UV) pip compile - --generate-hashes \
	  --custom-compile-command 'make lock' -q -o requirements-uv.lock

# The main job, end to end on the built-in digits: Triton and the Dagster UI start in the
# background (reused if this state dir already runs them); Dagster ingests the daily batches
# (Great Expectations checks, quarantine), versions training_dataset with DVC, then its
# generator_model asset runs the Kubeflow pipeline (kfp.local): validate -> train -> evaluate +
# gate -> export -> publish to Triton; finally an app-style gRPC request draws a grid.
# It prints one line per stage; the full Dagster/kfp.local output goes to a log file under
# $(GENLINE_HOME)/run/ (printed). VERBOSE=1 make demo shows everything.
STATUS_JSON = $(GENLINE_HOME)/run/serve-status.json
demo: setup
	$(Q)$(GL) serve --background
	$(Q)$(GL) ui --background
	$(Q)$(GL) data materialize --train --preset $(PRESET) --publish $(if $(VERBOSE),--verbose) \
	  --model-repository triton_repo --triton-url $(TRITON_URL)
	@mkdir -p $(OUT)
	$(Q)$(GL) generate --label 7 -n 16 --seed 1 --out $(OUT)/grid_served.png --url $(TRITON_URL)
	$(Q)$(GL) serve --status $(if $(VERBOSE),,> $(STATUS_JSON) || (cat $(STATUS_JSON); exit 1))
	@echo "Triton runs in the background: gRPC $(TRITON_URL) (model genline_generator),"
	@echo "  HTTP 127.0.0.1:8000, metrics http://127.0.0.1:8002/metrics; client example: docs/serving.md"
	@echo "Dagster UI: http://127.0.0.1:3000   grid from Triton: $(OUT)/grid_served.png"
	@echo "Stop both with: make stop"

# The Dagster UI (foreground) on the persistent instance under $(GENLINE_HOME)/dagster_home.
ui: setup
	$(GL) ui

# Stop what `make demo` left running.
stop:
	-$(GL) serve --stop
	-$(GL) ui --stop

test: setup
	$(BIN)/pytest -q --timeout 1200 --durations=25

# Unit tests only (no training, no servers).
test-fast: setup
	$(BIN)/pytest -q tests/unit -m "not slow and not integration"

lint: setup
	$(BIN)/ruff check src tests components pipelines dagster_project benchmarks
	$(BIN)/ruff format --check src tests components pipelines dagster_project benchmarks || true

format: setup
	$(BIN)/ruff format src tests components pipelines dagster_project benchmarks

bench: setup
	$(BIN)/python benchmarks/run_all.py

# Render and validate the Kubernetes manifests (also part of `make test`).
k8s-validate: setup
	$(BIN)/pytest -q tests/unit/k8s

# Container images (needs a container engine; not part of CI: none runs here).
image:
	docker build -t ghcr.io/genline/genline:0.1.0 .
	docker build -f Dockerfile.gpu -t ghcr.io/genline/genline:0.1.0-gpu .

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
