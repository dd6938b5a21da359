# The two commands: `make reproduce` (the papermill pipeline; PROFILE=paper by default,
# PROFILE=smoke for a quick run, ONLY="01 02" for some notebooks) and `make test`.
# Both create .venv on first use and need nothing installed by hand but python3 with venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= paper
ONLY ?=
STAMP := $(VENV)/.installed

.DELETE_ON_ERROR:
.PHONY: venv test reproduce lab lint browser clean

# The stamp is written only after a complete install: an interrupted or failed install leaves
# no stamp, so the next make installs again. A virtualenv without a working pip (e.g. an
# interrupted `python -m venv`) is recreated. Editing pyproject.toml triggers a reinstall.
$(STAMP): pyproject.toml
	@rm -f $(STAMP)
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "creating $(VENV) with $(PYTHON)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

browser: venv
	@VENV=$(VENV) bash scripts/ensure-browser.sh

test: venv browser
	$(PY) -m pytest

reproduce: venv browser
	$(PY) -m aquasurf_core.pipeline --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

lint: venv
	$(VENV)/bin/ruff check aquasurf_core tests benchmarks

clean:
	rm -rf papermill_runs/smoke papermill_runs/paper .aquasurf_cache
