# tradebot: `make run` and `make test` do all set-up on a fresh machine and are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0
# apexomni hard-pins packages that conflict with torch: installed without its pins (docs/apex.md)
APEX_PIN := apexomni==3.4.2
CONFIG ?= configs/default.yaml

# Numba's compiled kernels (kernels use cache=True) and the parsed-bar cache go to .cache/numba
# and .cache/tradebot in this checkout: the default is defined once, in engine/cache.py, so
# `make run`, a direct `tradebot ...` and the tests share one cache. Nothing is exported here.

.PHONY: run test bench venv lint clean demo

venv: $(STAMP)

# Re-installs only when the dependency list changes. torch is installed first and pinned to the
# CPU build so that no range in setup.cfg lets pip pull a multi-GB CUDA build.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e '.[test,bench]'
	$(PIP) install --no-deps $(APEX_PIN)
	touch $@

run: $(STAMP)
	$(VENV)/bin/tradebot run $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

# The whole system in a minute: a local Apex venue replaying the real candles, the engine in
# paper mode publishing on ZeroMQ, and the Dash UI; prints the URL; Ctrl-C stops all three.
demo: $(STAMP)
	$(PY) ui/demo.py $(DEMO_ARGS)

lint: $(STAMP)
	$(PY) -m pip install -q ruff
	$(VENV)/bin/ruff check engine indicators models strategies adapters ui tests bench

clean:
	rm -rf $(VENV) .cache build *.egg-info
