# chainrule developer tasks. Needs only python3 (with venv + pip) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: all venv demo test bench lint docs wheel clean distclean

all: test

# --- virtual environment (stamp files make re-runs fast) -------------------
$(VENV)/.created:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

venv: $(VENV)/.created

# Reinstall only when pyproject.toml is newer than the stamp.
$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e '.[dev]'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e '.[dev,docs]'
	touch $@

$(VENV)/.installed-demo: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e '.[plot,progress]'
	touch $@

# --- tasks ------------------------------------------------------------------
demo: $(VENV)/.installed-demo
	$(BIN)/chainrule demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/mypy

# The documentation site (offline), warnings as errors; open docs/_build/html/index.html.
docs: $(VENV)/.installed-docs
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# Build the wheel and check that it ships py.typed and the bundled data.
wheel: $(VENV)/.created
	rm -rf dist
	$(PIP) wheel --quiet --no-deps --wheel-dir dist .
	$(BIN)/python .ci/check_wheel.py dist

clean:
	rm -rf build dist docs/_build docs/auto_examples docs/api/generated src/*.egg-info .pytest_cache .ruff_cache .hypothesis .mypy_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
