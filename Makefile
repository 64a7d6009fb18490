# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed
export PAYMENT_GATEWAY_EMULATOR ?= 1

.PHONY: run test test-sqlite test-postgres install migrate bench clean audit translations

$(STAMP): requirements.txt requirements-dev.txt scripts/system-packages
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
## the pass, so they run once, in the PostgreSQL pass. So do the browser journeys
## (tests/browser): what they add to the end-to-end tests, which run on both databases,
## is the browser, and a pass of them takes a minute or two.
test: $(STAMP)
	bash scripts/services-up
	$(BIN)/python -m pytest -q --ignore=tests/faults --ignore=tests/browser
	TEST_POSTGRES_URL=$${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test} $(BIN)/python -m pytest -q

## bench: the performance suite (bench/README.md): the site under gunicorn with RQ workers,
## the bare baseline app and wrk, on this machine against a scratch PostgreSQL database;
## prints one table of ratios and absolute figures. Not part of `make test` or CI.
bench: $(STAMP)
	bash scripts/services-up
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## translations: gather the marked strings of the pages and Python into the template
## (messages.pot), bring the Chinese catalogue up to date with it, and compile it (the
## .mo is committed, so the site runs from a clone without this step). New strings
## arrive untranslated: tests/test_i18n.py fails until each has its Chinese.
CATALOGUES := app/translations
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --add-location=file --sort-output --no-wrap \
		--omit-header -k _l -o $(CATALOGUES)/messages.pot .
	$(BIN)/pybabel update -i $(CATALOGUES)/messages.pot -d $(CATALOGUES) -l zh \
		--no-fuzzy-matching --no-wrap
	$(BIN)/pybabel compile -d $(CATALOGUES) -l zh

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
