# dynashift — every target sets up what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAM_VENV := .venv-sam
PYTEST_ARGS ?=
# The suite's processes (pytest-xdist; each has its own moto server): 2 fits a 2-core machine.
PYTEST_WORKERS ?= 2

.PHONY: install lint typecheck asl test demo build python312 validate bench clean model-soak

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	npm ci --prefix tools/iam-simulate --no-audit --no-fund --silent
	touch $(STAMP)

lint: install
	$(BIN)/ruff check setup.py src functions tests bench
	$(BIN)/ruff format --check setup.py src functions tests bench

typecheck: install
	$(BIN)/mypy

# The Amazon States Language validator (npm, pinned in package-lock.json) on the generated
# definition, placeholders filled with dummy ARNs: what CreateStateMachine checks and moto does
# not (unique state names in nested Maps, ...).
NODE_STAMP := node_modules/.installed-stamp

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

asl: install $(NODE_STAMP)
	@tmp=$$(mktemp --suffix=.asl.json) && \
	$(BIN)/python -m dynashift.workflow.definition --filled $$tmp && \
	node_modules/.bin/asl-validator --json-path $$tmp; rc=$$?; rm -f $$tmp; exit $$rc

test: lint typecheck asl
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

demo: install
	$(BIN)/dynashift demo

# AWS SAM lives in its own venv: its pins must not fight the engine's.
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.120,<2'

validate: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam validate --lint

# `sam build` needs the functions' runtime, python3.12, on PATH. With pyenv holding 3.11.7 and
# 3.12.1 (and no PYENV_VERSION of your own), PYENV_VERSION exposes both; without pyenv, the
# python3.12 on PATH is used; with none, the build stops before installing SAM.
PYENV_PYTHONS := 3.11.7 3.12.1
SAM_PYENV = $(shell [ -z "$$PYENV_VERSION" ] && command -v pyenv >/dev/null 2>&1 && \
	[ "$$(pyenv versions --bare 2>/dev/null | grep -cxF -e 3.11.7 -e 3.12.1)" = 2 ] && \
	echo $(subst $(eval) ,:,$(PYENV_PYTHONS)))
WITH_PYTHON312 = $(if $(SAM_PYENV),PYENV_VERSION=$(SAM_PYENV) )

python312:
	@$(WITH_PYTHON312)python3.12 --version >/dev/null 2>&1 || { \
	  echo "make build: sam build needs python3.12 (the functions' runtime) on PATH;" \
	    "install it (or with pyenv: pyenv install 3.12 and set PYENV_VERSION)" >&2; exit 1; }

build: python312 validate
	$(WITH_PYTHON312)$(SAM_VENV)/bin/sam build

# Model-based search (tests/model): DYNASHIFT_MODEL_EXAMPLES schedules per variant, shrunk.
model-soak: install
	DYNASHIFT_MODEL_EXAMPLES=$${DYNASHIFT_MODEL_EXAMPLES:-5000} $(BIN)/pytest tests/model -q -p no:cacheprovider --timeout 0 --runxfail

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(SAM_VENV) node_modules .aws-sam .mypy_cache .pytest_cache .ruff_cache
