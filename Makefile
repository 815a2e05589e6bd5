# xgate — every target creates .venv itself; only python3.11 and make are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench sandbox clean fmt

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv
	@$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## make run: the gateway with embedded defaults (SQLite under ./var, sandbox as X), demo events end to end
run: $(STAMP)
	$(BIN)/python -m xgate.demo

## make test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## make bench: benchmarks, written to BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench

sandbox: $(STAMP)
	$(BIN)/xgate sandbox --port 8787

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
