# genline: the two commands are `make demo` and `make test`; both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
GL     := $(BIN)/genline
STAMP  := $(VENV)/.genline-installed
OUT    ?= out
export GENLINE_HOME ?= $(CURDIR)/.genline

TRITON_URL ?= 127.0.0.1:8001
PRESET     ?= ci
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

# The main job, the whole loop on the built-in digits (`genline demo`, docs/demo.md), in a fresh
# state dir $(DEMO_HOME) (the previous demo's services are stopped and its state removed first):
# Triton and the Dagster UI (webserver + daemon) start in the background; Dagster ingests the
# history (Great Expectations checks, quarantine) and versions it with DVC; the Kubeflow pipeline
# (kfp.local) trains, gates, exports and publishes to Triton; app traffic flows; new deliveries in
# a thicker style arrive and are accepted with an input-drift warning; the drift schedule finds
# the serving version stale, an alert is delivered, the retrain sensor (run by the daemon)
# retrains on the new data version, the challenger wins and serves, and staleness resolves. It
# prints a timeline (stage, time, outcome, link) and leaves Triton, the UI and the reports up.
DEMO_HOME  ?= $(GENLINE_HOME)/demo
demo: setup
	-$(Q)GENLINE_HOME=$(DEMO_HOME) $(GL) serve --stop > /dev/null 2>&1
	-$(Q)GENLINE_HOME=$(DEMO_HOME) $(GL) ui --stop > /dev/null 2>&1
	$(Q)rm -rf $(DEMO_HOME)
	$(Q)GENLINE_HOME=$(DEMO_HOME) $(GL) demo --preset $(PRESET) --triton-url $(TRITON_URL)
	@mkdir -p $(OUT)
	$(Q)GENLINE_HOME=$(DEMO_HOME) $(GL) generate --label 7 -n 16 --seed 1 \
	  --out $(OUT)/grid_served.png --url $(TRITON_URL)

# The Dagster UI (foreground) on the persistent instance under $(GENLINE_HOME)/dagster_home.
ui: setup
	$(GL) ui

# Stop what `make demo` (and `make ui`, `genline serve --background`) left running.
stop:
	-$(Q)GENLINE_HOME=$(DEMO_HOME) $(GL) serve --stop
	-$(Q)GENLINE_HOME=$(DEMO_HOME) $(GL) ui --stop
	-$(GL) serve --stop
	-$(GL) ui --stop

# Two workers (pytest-xdist), one test file per worker at a time, so a module's servers and
# fixtures start once: 13.8 min instead of 17.7 min serially here (2 cores).
test: setup
	$(BIN)/pytest -q -n 2 --dist loadfile --timeout 1200 --durations=25

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
