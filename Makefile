# `make train` and `make test` need no set-up: they create the virtual environment when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU-only machines get a CPU build of torch (an unpinned `torch` pulls a multi-GB CUDA build).
# Elsewhere, PyPI's torch wheel is a CUDA build: add TORCH_INDEX=<PyTorch's CPU wheel index> for a small one.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
TORCH_INDEX ?=
# Every other package at the version CI and docs/results.md ran with (pip constraints); `LOCK=`
# installs pyproject.toml's unpinned ranges instead.
LOCK ?= requirements/cpu.lock
ARGS ?=
PYTEST_ARGS ?= -n 2

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q --disable-pip-version-check $(if $(LOCK),-c $(LOCK)) -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## Create .venv and install vad with its dev tools (pinned: requirements/cpu.lock)

train: install ## Train the default (DESDnet on synthetic data, CPU); extra overrides via ARGS="..."
	$(PY) -m vad.train $(ARGS)

fakes: install ## Rebuild the fake dataset layouts used by the tests
	$(PY) tests/data/make_fakes.py tests/data/fakes

test: install ## Run the test suite without slow tests (what CI runs)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-full: install ## Run every test, slow ones included
	$(PY) -m pytest $(PYTEST_ARGS)

sweep-demo: install ## A tiny Hydra multirun on synthetic data
	$(PY) -m vad.train -m trainer.max_epochs=1 seed=1,2 $(ARGS)

lint: install ## Lint with ruff
	$(PY) -m ruff check vad tests

format: install ## Format with ruff
	$(PY) -m ruff format vad tests
	$(PY) -m ruff check --fix vad tests

clean: ## Remove caches and Hydra outputs (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache .cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install train fakes test test-full sweep-demo lint format clean
