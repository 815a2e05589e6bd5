# xgate — every target creates .venv itself; only python3.11 and make are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the same code with its per-event hot path compiled by mypyc (docs/performance.md), in a venv of its own:
# the editable .venv always runs the sources as they are
NATIVE       := .venv-native
NATIVE_STAMP := $(NATIVE)/.installed
SOURCES      := $(shell find src -name '*.py')
# the tests that run again on the compiled build: everything that maps or collects events
NATIVE_TESTS := tests/mapping tests/collect tests/offline tests/client tests/browser/test_routes.py \
                tests/browser/test_tag.py tests/browser/test_middleware.py

.PHONY: run test lint bench sandbox clean fmt wheel locks image pg pg-stop

# two locks, both made by `make locks`: requirements.lock pins what xgate runs on (the image installs only
# it), requirements-dev.lock the same versions plus the test, bench and lint extras (these venvs)
$(STAMP): pyproject.toml requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv
	@$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-dev.lock
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

$(NATIVE_STAMP): $(STAMP) $(SOURCES) requirements-dev.lock
	@test -x $(NATIVE)/bin/python || $(PYTHON) -m venv $(NATIVE)
	@$(BIN)/uv pip install -q --python $(NATIVE)/bin/python -r requirements-dev.lock
	@rm -rf build/native && HATCH_BUILD_HOOKS_ENABLE=1 $(BIN)/uv build -q --out-dir build/native
	@$(BIN)/uv pip install -q --python $(NATIVE)/bin/python --no-deps --reinstall build/native/xgate-*.whl
	@touch $@

## make wheel: sdist and wheel in dist/, the wheel's hot path compiled with mypyc (needs a C compiler)
wheel: $(STAMP)
	HATCH_BUILD_HOOKS_ENABLE=1 $(BIN)/uv build --out-dir dist

## make locks: pin pyproject's dependencies again after editing them (versions already pinned stay as they
## are; `uv pip compile --upgrade-package NAME` moves one); no index URLs are written into the files
LOCK := $(BIN)/uv pip compile -q pyproject.toml --no-emit-index-url --custom-compile-command "make locks"
locks: $(STAMP)
	$(LOCK) -o requirements.lock
	$(LOCK) --all-extras -o requirements-dev.lock

## make image: the container image, from the public debian:bookworm-slim (docs/deploy.md, "Containers")
image:
	docker build -t xgate .

## make run: the gateway with embedded defaults (SQLite under ./var, sandbox as X), demo events end to end
run: $(STAMP)
	$(BIN)/python -m xgate.demo

## make test: the whole test suite, then the mapping-related tests again on the compiled build
test: $(STAMP) $(NATIVE_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	XGATE_EXPECT_COMPILED=1 $(NATIVE)/bin/python -m pytest -q -p no:cacheprovider $(NATIVE_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## make bench: benchmarks of the compiled build (as `make wheel` ships it), written to BENCHMARKS.md
bench: $(NATIVE_STAMP)
	XGATE_PLAIN_PYTHON=$(BIN)/python $(NATIVE)/bin/python -m bench

## make pg: start a throwaway PostgreSQL for the tests (.ci/postgres.sh); then, in your shell:
##   export XGATE_TEST_POSTGRES_URL=$$(.ci/postgres.sh url)   (or: eval "$$(.ci/postgres.sh start)")
pg:
	@.ci/postgres.sh start

pg-stop:
	@.ci/postgres.sh stop

sandbox: $(STAMP)
	$(BIN)/xgate sandbox --port 8787

clean:
	rm -rf $(VENV) $(NATIVE) build dist var .pytest_cache .mypy_cache .ruff_cache
