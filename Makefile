# The two commands: `make run` and `make test`. Everything else sits beside them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 100000
AXE := tests/browser/node/node_modules/axe-core/axe.min.js

.PHONY: install install-server run test lint typecheck bench chaos clean system-packages

install: $(STAMP) system-packages $(AXE)

# axe-core (from npm) for the browser tests' accessibility checks; served from disk.
$(AXE): tests/browser/node/package.json
	npm install --prefix tests/browser/node --no-audit --no-fund --silent
	touch $(AXE)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,testing]'
	touch $(STAMP)

# A server's install: the service and its runtime dependencies only, no test tools.
install-server:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .

# Debian's chromium drives the browser tests; installed only when missing.
system-packages:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

# `make run PORT=8123`: another port; in development BASE_URL follows it.
run: $(STAMP)
	$(BIN)/nurture serve $(if $(PORT),--port $(PORT))

lint: $(STAMP)
	$(BIN)/ruff check nurture tests benchmarks
	$(BIN)/ruff format --check nurture tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest -q

# The newsletter against the floor (benchmarks/floor.py) on each backend; CURVE=1 runs
# 10k, 100k and 1M instead of N; REPEAT=R keeps the best of R runs of each (a shared
# machine is noisy; webhook ingestion and sign-up keep their best of R too). Then the
# outbox's bookkeeping alone against the floor's, scheduler ticks, webhook ingestion and
# sign-up.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.hot_paths
	$(BIN)/python -m benchmarks.newsletter --n $(N) $(if $(CURVE),--curve,) $(if $(REPEAT),--repeat $(REPEAT),)
	$(BIN)/python -m benchmarks.bookkeeping --n $(N)
	$(BIN)/python -m benchmarks.ticks
	$(BIN)/python -m benchmarks.web $(if $(REPEAT),--repeat $(REPEAT),)

# Duplicates, lost emails and time to drain under SIGKILL, SIGTERM and outages
# (10000 subscribers unless N is given; needs the PostgreSQL that `make test` uses).
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.chaos --n $(if $(filter command line environment,$(origin N)),$(N),10000)

clean:
	rm -rf var/mail var/preview .pytest_cache .mypy_cache .ruff_cache
