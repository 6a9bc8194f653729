# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin

.PHONY: demo test lint package bench clean
.DELETE_ON_ERROR:  # a venv whose creation failed half way is made again, not reused

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python -m chainrule demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/mypy src

# Every test, tests/test_package.py included: it builds the sdist and the wheel, installs the wheel
# into a throwaway venv outside the source tree and runs `chainrule demo` and `chainrule graph` there.
test: lint
	$(BIN)/python -m pytest

# Only the packaging check: the installed package is the tested package.
package: $(VENV)/.installed-dev
	$(BIN)/python -m pytest tests/test_package.py

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) chainrule-out build dist .pytest_cache .mypy_cache .ruff_cache
