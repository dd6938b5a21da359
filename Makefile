# The two commands: `make reproduce` (the papermill pipeline; PROFILE=paper by default,
# PROFILE=smoke for a quick run, ONLY="01 02" for some
# notebooks) and `make test`. Both create .venv from requirements.lock on first use and need
# nothing installed by hand but python3 (3.11, the lock's Python) with venv.
# `make book` (PROFILE=paper by default) turns the executed notebooks of `make reproduce` into a
# browsable site, papermill_runs/<profile>/book/index.html, without re-executing them; it works
# offline (aquasurf_core/book.py).
# `make lab` serves the whole repository (so figures/ and papermill_runs/ are in reach) and
# opens notebooks/; LAB_ARGS passes options on to jupyter lab, e.g.
# `make lab LAB_ARGS="--no-browser --ip=0.0.0.0 --port=8888"`. It also reads
# jupyter_server_config.py (besides your own Jupyter config), whose pre-save hook keeps the
# notebooks/*.ipynb files free of outputs and execution counts when JupyterLab saves them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= paper
ONLY ?=
LAB_ARGS ?=
STAMP := $(VENV)/.installed
LOCK := requirements.lock
LOCK_PYTHON := 3.11
UV_VERSION := 0.13.9
LOCK_ENV := .lock-env

.DELETE_ON_ERROR:
.PHONY: venv test reproduce book lab lint lock browser clean

# The stamp is written only after a complete install: an interrupted or failed install leaves
# no stamp, so the next make installs again. A virtualenv without a working pip (e.g. an
# interrupted `python -m venv`) is recreated. A new lock or pyproject.toml reinstalls.
# The lock is the whole dependency closure with hashes, so pip installs it with --no-deps and
# checks every file; the project itself goes in editable, without dependencies. --no-cache-dir:
# the CUDA build of torch and its libraries are several GB, and a second copy of them in pip's
# cache can fill a small disk.
$(STAMP): $(LOCK) pyproject.toml
	@rm -f $(STAMP)
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "creating $(VENV) with $(PYTHON)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	fi
	@$(PY) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; v == "$(LOCK_PYTHON)" or print( \
	  f"warning: $(VENV) runs Python {v}; $(LOCK) was resolved for $(LOCK_PYTHON)", file=sys.stderr)'
	$(PY) -m pip install --quiet --no-cache-dir --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	@touch $(STAMP)

venv: $(STAMP)

# Regenerate the lock from pyproject.toml's ranges and lock-pins.txt (with uv, in a throwaway
# virtualenv), then environment.yml from the lock. Run `make test` afterwards.
lock:
	@rm -rf $(LOCK_ENV) && $(PYTHON) -m venv $(LOCK_ENV)
	$(LOCK_ENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(LOCK_ENV)/bin/uv pip compile pyproject.toml --extra dev -c lock-pins.txt \
	  --python-version $(LOCK_PYTHON) --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --custom-compile-command "make lock" -o $(LOCK)
	$(PYTHON) scripts/write_environment_yml.py
	@rm -rf $(LOCK_ENV)

browser: venv
	@VENV=$(VENV) bash scripts/ensure-browser.sh

# The tests run on every core (pytest-xdist; `make test PYTEST_WORKERS=0` runs them in one
# process): on our 2 cores the suite takes ~11 min instead of ~19.
PYTEST_WORKERS ?= auto
test: venv browser
	$(VENV)/bin/ruff check aquasurf_core tests benchmarks scripts jupyter_server_config.py
	$(PY) -m pytest -n $(PYTEST_WORKERS)

reproduce: venv browser
	$(PY) -m aquasurf_core reproduce --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

book: venv
	$(PY) -m aquasurf_core.book --profile $(PROFILE)

lab: venv
	JUPYTER_CONFIG_PATH="$(CURDIR)$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))" \
	  $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" \
	  --LabApp.default_url=/lab/tree/notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

lint: venv
	$(VENV)/bin/ruff check aquasurf_core tests benchmarks scripts jupyter_server_config.py

clean:
	rm -rf papermill_runs/smoke papermill_runs/paper .aquasurf_cache
