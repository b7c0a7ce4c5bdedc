# genline: the two commands are `make demo` and `make test`; both create .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
GL     := $(BIN)/genline
STAMP  := $(VENV)/.genline-installed
OUT    ?= out
export GENLINE_HOME ?= $(CURDIR)/.genline

.PHONY: setup demo test test-fast lint format bench ui stop clean image

# Create the venv and install genline with its dev tools; quick when nothing changed.
setup: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The main job, end to end on the built-in digits.
demo: setup
	$(GL) train --preset default --out $(OUT)/model
	$(GL) sample --model $(OUT)/model --out $(OUT)/grid.png -n 10
	@echo "sample grid: $(OUT)/model/samples.png"

test: setup
	$(BIN)/pytest -q --timeout 1200

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

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
