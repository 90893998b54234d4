# gridwatch: the two commands a new user needs.
#   make demo   create .venv, install edge + central (no torch), run `gridwatch demo`
#   make test   install the test dependencies (and Debian's mosquitto when missing), run ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-train venv install install-dev mosquitto postgres lint typecheck pytest clean

demo: install mosquitto
	$(BIN)/gridwatch demo $(DEMO_ARGS)

test: install-dev mosquitto postgres lint typecheck pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# The real broker binary (Debian's package); the demo and end-to-end tests start private instances of it.
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || \
	  ( echo "installing mosquitto (Debian package)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto )

# PostgreSQL for the central store's tests (SQLite is the default store; PostgreSQL is tested too).
postgres:
	@bash scripts/ensure-postgres.sh

lint:
	$(BIN)/ruff check .

typecheck:
	$(BIN)/python scripts/linktree.py >/dev/null
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest -q

# the tests marked `train` (real Ultralytics training): needs the [train] extra in $(VENV)
test-train: install-dev
	$(BIN)/python -m pip install --quiet -e '.[train]'
	GRIDWATCH_REQUIRE_TRAIN=1 $(BIN)/python -m pytest -q -m train

clean:
	rm -rf demo-out .build .pytest_cache .mypy_cache .ruff_cache
