# renewforecast: two commands on a fresh machine.
#   make report   build .venv, generate the demo org, run every report, print where the HTML is
#   make test     build .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RF := $(VENV)/bin/renewforecast
DATA ?= data/demo
ACCOUNTS ?= 2000
SEED ?= 7
REPORTS ?= reports
PYTEST_ARGS ?=

.PHONY: all install demo report test clean-reports help

help:
	@echo "make report   build the environment, generate the demo org, publish every report"
	@echo "make test     build the environment and run the tests"
	@echo "make demo     (re)generate the demo org in $(DATA)"

# The environment is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

$(DATA)/.complete: $(VENV)/.installed
	$(RF) demo-data $(DATA) --accounts $(ACCOUNTS) --seed $(SEED)
	@touch $@

demo: $(DATA)/.complete

report: $(DATA)/.complete
	$(RF) report $(DATA) --out $(REPORTS)
	@echo "Reports: $(abspath $(REPORTS))/latest/index.html"

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

clean-reports:
	rm -rf $(REPORTS)/[0-9]* $(REPORTS)/latest $(REPORTS)/failed
