# Two entry points for a fresh machine with Python 3.11 and pip:
#   make demo   installs, runs the quickstart sweep on a local Ray, writes results/quickstart/report.html
#   make test   installs, runs the whole test suite (slow Ray tests included)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/grokgrid sweep sweeps/quickstart.yaml --overwrite

test: install
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
