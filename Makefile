# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed
export PAYMENT_GATEWAY_EMULATOR ?= 1

.PHONY: run test test-sqlite test-postgres install migrate bench clean audit

$(STAMP): requirements.txt requirements-dev.txt
	bash scripts/system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## run: the embedded default on http://127.0.0.1:5000 (SQLite, inline jobs, emulator, demo data)
run: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	BACKGROUND_TICKER=1 $(FLASK) run --host 127.0.0.1 --port 5000 --with-threads --no-reload

## test: the whole suite on SQLite, then again on PostgreSQL (a database created per run).
## The fault tests (tests/faults) bring their own PostgreSQL cluster and Redis, whatever
## the pass, so they run once, in the PostgreSQL pass.
test: $(STAMP)
	bash scripts/services-up
	$(BIN)/python -m pytest -q --ignore=tests/faults
	TEST_POSTGRES_URL=$${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test} $(BIN)/python -m pytest -q

## audit: pip-audit over the pinned requirements, for a machine that reaches a vulnerability
## database (PyPI's JSON API by default; `make audit AUDIT_ARGS="-s osv"` asks OSV instead).
## Not part of `make test` or CI. pip-audit has a virtualenv of its own, so its dependencies
## stay out of the one the tests run in.
AUDIT_VENV := $(VENV)-audit
PIP_AUDIT_VERSION := 2.10.1
AUDIT_STAMP := $(AUDIT_VENV)/.pip-audit-$(PIP_AUDIT_VERSION)

$(AUDIT_STAMP):
	test -x $(AUDIT_VENV)/bin/python || $(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install --quiet pip-audit==$(PIP_AUDIT_VERSION)
	touch $(AUDIT_STAMP)

audit: $(AUDIT_STAMP)
	$(AUDIT_VENV)/bin/pip-audit --strict --progress-spinner off $(AUDIT_ARGS) \
		-r requirements.txt -r requirements-dev.txt

clean:
	rm -rf $(VENV) $(AUDIT_VENV) .pytest_cache
