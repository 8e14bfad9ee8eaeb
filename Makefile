# Two commands on a fresh machine: `make demo` and `make test`.
# Everything installs into .venv from the project's own files; nothing is downloaded at run time.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install demo test test-fast typecheck bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pinned first: the CPU build on this machine; an unpinned torch would pull CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	# llama.cpp built for portable AVX2, not -march=native: its native build enables the AMX
	# kernels on CPUs that have them, and those crash (SIGSEGV) where the OS withholds AMX state.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet "llama-cpp-python==0.3.35"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/archivist demo

# lint-imports holds the layers (bot -> connectors -> core) in [tool.importlinter], pyproject.toml.
test: install typecheck
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

# The Weaviate backend against weaviate-client's own types; files and flags in pyproject.toml.
typecheck: install
	$(PY) -m mypy

test-fast: install
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) benchmarks/sync_throughput.py
	$(PY) benchmarks/ask_latency.py
	$(PY) benchmarks/chat_memory.py
	$(PY) benchmarks/sample_answers.py
	$(PY) benchmarks/slack_ack.py
	$(PY) benchmarks/store_backends.py
	$(PY) benchmarks/saas_connectors.py
	$(PY) benchmarks/polled_connectors.py
	$(PY) benchmarks/safe_writes.py
	$(PY) benchmarks/embedding_backends.py
	$(PY) benchmarks/finetune.py

lint: install
	$(VENV)/bin/ruff check core connectors bot tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf .archivist
