# sollama — the two commands that matter on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SOLLAMA := $(VENV)/bin/sollama
PYTHON ?= python3
export SOLLAMA_TOOLS ?= $(HOME)/.cache/sollama/tools

.PHONY: venv ollama model services test test-unit test-ollama demo lint completions bench-tool clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

ollama:  ## build the pinned Ollama into $(SOLLAMA_TOOLS)/bin (CI: must succeed; locally an ollama on PATH will do)
	@if bash scripts/install-ollama.sh >/dev/null; then :; \
	elif [ "$${CI:-}" = "true" ]; then echo "error: could not build Ollama, and CI requires it" >&2; exit 1; \
	elif command -v ollama >/dev/null || [ -n "$${SOLLAMA_OLLAMA_BIN:-}" ]; then echo "using the ollama already installed" >&2; \
	else echo "warning: no Ollama: integration tests will be skipped (CI never skips them)" >&2; fi

model:   ## fetch the SmolLM2-135M GGUF into $(SOLLAMA_TOOLS)/models
	bash scripts/fetch-test-model.sh >/dev/null

services:  ## Debian's chromium, prometheus (promtool), redis-server, postgresql for the tests (CI: must succeed)
	@if bash scripts/install-test-services.sh; then :; \
	elif [ "$${CI:-}" = "true" ]; then echo "error: could not install the test services, and CI requires them" >&2; exit 1; \
	else echo "warning: browser, promtool and fleet tests will be skipped (CI never skips them)" >&2; fi

test: venv ollama model services  ## unit + integration tests against the real daemon, Redis, PostgreSQL, Chromium
	$(PY) -m pytest -q

test-unit: venv
	$(PY) -m pytest -q -m "not ollama"

test-ollama: venv ollama model
	$(PY) -m pytest -q -m ollama

demo: venv ollama model  ## start the daemon, import SmolLM2, show status, generate, bench
	bash scripts/demo.sh

lint: venv  ## ruff over the tree, mypy over ollama_ops/ ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

completions: venv  ## regenerate completions/ after changing commands
	for sh in bash zsh fish; do $(SOLLAMA) completion $$sh > completions/sollama.$$sh; done

bench-tool: venv  ## the tool's own performance figures (benchmarks/)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
