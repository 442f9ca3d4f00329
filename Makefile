# The two commands: `make run` and `make test`. Everything else sits beside them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 100000

.PHONY: install run test lint typecheck bench clean system-packages

install: $(STAMP) system-packages

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,testing]'
	touch $(STAMP)

# Debian's chromium drives the browser tests; installed only when missing.
system-packages:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

run: $(STAMP)
	$(BIN)/nurture serve

lint: $(STAMP)
	$(BIN)/ruff check nurture tests benchmarks
	$(BIN)/ruff format --check nurture tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.hot_paths
	$(BIN)/python -m benchmarks.newsletter --n $(N)

clean:
	rm -rf var/mail var/preview .pytest_cache .mypy_cache .ruff_cache
