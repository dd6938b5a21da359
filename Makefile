# The two commands: `make reproduce` (papermill pipeline, PROFILE=paper by default) and
# `make test`. Both create .venv on first use and need nothing installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= paper
STAMP := $(VENV)/.installed

.PHONY: venv test reproduce lab lint browser clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

browser: venv
	@bash scripts/ensure-browser.sh

test: venv browser
	$(PY) -m pytest

reproduce: venv browser
	$(VENV)/bin/aquasurf reproduce --profile $(PROFILE)

lab: venv
	$(VENV)/bin/jupyter lab notebooks

lint: venv
	$(VENV)/bin/ruff check aquasurf_core tests benchmarks

clean:
	rm -rf papermill_runs/smoke papermill_runs/paper .aquasurf_cache
