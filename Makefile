# renewforecast: two commands on a fresh machine.
#   make report   build .venv, generate the demo org, train, run every report, print where the HTML is
#   make test     build .venv, run ruff (lint and format check), then the test suite
#   make lab      JupyterLab on the report notebooks (the package's templates), with the project's kernel
# .venv is built from requirements-dev.lock (exact versions, with hashes); `make lock` regenerates it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RF := $(VENV)/bin/renewforecast
DATA ?= data/demo
ACCOUNTS ?= 8000
MODELS ?= models
SEED ?= 7
REPORTS ?= reports
PYTEST_ARGS ?=
LAB_ARGS ?=
LOCK := requirements-dev.lock
LOCK_ARGS ?=
RUFF := $(VENV)/bin/ruff

.PHONY: all install demo train report test lint format lock lab kernel clean-reports clean-notebooks help

help:
	@echo "make report   build the environment, generate the demo org, publish every report"
	@echo "make test     build the environment, check lint and formatting, run the tests"
	@echo "make lint     ruff check and ruff format --check"
	@echo "make format   apply ruff's safe fixes and format the code"
	@echo "make lock     regenerate $(LOCK) after a change to the dependencies in pyproject.toml"
	@echo "make demo     (re)generate the demo org in $(DATA)"
	@echo "make lab      open the report notebooks in JupyterLab with the project's kernel"
	@echo "make clean-notebooks  clear the notebooks' outputs before a commit"

# The environment holds exactly the versions in the lock file (pip checks their hashes), then
# the project itself without dependencies; it is brought up to date when the lock or
# pyproject.toml changes.
$(VENV)/.installed: $(LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

install: $(VENV)/.installed

$(DATA)/.complete: $(VENV)/.installed
	$(RF) demo-data $(DATA) --accounts $(ACCOUNTS) --seed $(SEED)
	@touch $@

demo: $(DATA)/.complete

# The default renewal model, trained on the demo org (the reports use it).
$(MODELS)/renewal/latest: $(DATA)/.complete
	$(RF) train $(DATA) --out $(MODELS)/renewal

train: $(MODELS)/renewal/latest

report: $(MODELS)/renewal/latest
	$(RF) report $(DATA) --out $(REPORTS) --model $(MODELS)/renewal
	@echo "Reports: $(abspath $(REPORTS))/latest/index.html"

# Lint first: a finding fails in a second, before a test run of minutes.
# One test process per core (TEST_WORKERS=0 runs them in this process); a file's tests stay in one
# worker, so its module fixtures (a demo org, a trained model, a Spark session) are built once.
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(RUFF) check .
	$(RUFF) format --check .

format: $(VENV)/.installed
	$(RUFF) check --fix .
	$(RUFF) format .

# Exact versions for CI's machine (CPython 3.11.7, Linux x86_64), resolved from the ranges in
# pyproject.toml; versions already in the lock are kept unless a range no longer allows them.
# Move everything to the newest allowed: make lock LOCK_ARGS=--upgrade
# Move one package:                      make lock LOCK_ARGS="--upgrade-package pandas"
lock: $(VENV)/.installed
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11.7 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes \
		--custom-compile-command "make lock" --quiet -o $(LOCK) $(LOCK_ARGS)

# The project's Python registered as the "python3" kernel the notebooks name,
# inside .venv; JUPYTER_PATH puts it ahead of any python3 kernel of the user's.
JUPYTER_DATA := $(abspath $(VENV))/share/jupyter
$(JUPYTER_DATA)/kernels/python3/kernel.json: $(VENV)/.installed
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (renewforecast)"

kernel: $(JUPYTER_DATA)/kernels/python3/kernel.json

# JupyterLab on the report templates themselves (the package's
# src/renewforecast/reports/notebooks/, the one source of each report): their
# relative defaults data/demo and models/renewal are looked for from the
# notebook's folder upward, so they find the demo org and the trained model
# at the root of the checkout. Commit them clean (no outputs): make test checks.
NOTEBOOKS := src/renewforecast/reports/notebooks
lab: kernel $(MODELS)/renewal/latest
	JUPYTER_PATH=$(JUPYTER_DATA) $(VENV)/bin/jupyter lab --notebook-dir=$(NOTEBOOKS) \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Clear outputs and execution counts of the templates before a commit.
clean-notebooks: $(VENV)/.installed
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS)/*.ipynb

clean-reports:
	rm -rf $(REPORTS)/[0-9]* $(REPORTS)/latest $(REPORTS)/failed
