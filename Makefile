# The two commands of the README: `make demo` and `make test`. Both set everything up
# from scratch on a fresh machine (a virtual environment with the project and its test
# tools) and are safe to re-run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/ensure-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo --dir .demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	@bash scripts/ensure-system-deps.sh --test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache
