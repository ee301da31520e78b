# wagtail-client-billing: `make demo` runs the example site, `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MANAGE := cd example_project && ../$(PY) manage.py
# The demo's ports (make demo DEMO_PORT=8001 ...): the site, the Stripe emulator, the SMTP
# sink and its mail log page.
DEMO_PORT ?= 8000
EMULATOR_PORT ?= 12111
SMTP_PORT ?= 1025
MAIL_PORT ?= 8025

.PHONY: help venv demo test test-modeladmin test-fast e2e docs-images lint typecheck bench bench-smoke build docs clean migrations

help: ## List the targets and the demo's port variables
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'
	@echo
	@echo "Variables of make demo (defaults):"
	@echo "  DEMO_PORT=$(DEMO_PORT) EMULATOR_PORT=$(EMULATOR_PORT) SMTP_PORT=$(SMTP_PORT) MAIL_PORT=$(MAIL_PORT)"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Create .venv and install the package with its test and dev tools

demo: venv ## Migrate, seed, then manage.py client_billing_dev: emulator, mail log, qcluster, dev server
	$(MANAGE) migrate --noinput
	cd example_project && exec ../$(PY) run_demo.py --port $(DEMO_PORT) --emulator-port $(EMULATOR_PORT) \
		--smtp-port $(SMTP_PORT) --mail-port $(MAIL_PORT)

test: venv ## Run the whole suite (browser tests too when Chromium is installed), then test-modeladmin
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-modeladmin

test-modeladmin: venv ## The app beside wagtail-modeladmin (its own settings, so its own pytest)
	$(PY) -m pytest --ds=tests.modeladmin_project.settings tests/modeladmin_project -p no:cacheprovider

test-fast: venv ## The suite without the browser tests
	$(PY) -m pytest -m "not e2e"

e2e: venv ## Only the browser tests (needs /usr/bin/chromium)
	$(PY) -m pytest tests/e2e -m e2e

docs-images: venv ## Run the browser tests and copy their screenshots into docs/images/
	E2E_DOCS_IMAGES=1 $(PY) -m pytest tests/e2e -m e2e

lint: venv ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv ## mypy on the package (Stripe parameters checked against stripe's TypedDicts)
	$(VENV)/bin/mypy wagtail_client_billing

bench: venv ## Run the benchmarks, print the table, write benchmarks/results.json
	$(PY) -m benchmarks

bench-smoke: venv ## Every benchmark once on tiny data: that each still runs (CI does this)
	$(PY) -m pytest -m bench tests/test_benchmarks_smoke.py -p no:cacheprovider

build: venv ## Build the sdist and the wheel into dist/
	rm -rf dist build
	$(PY) -m build --sdist --wheel --outdir dist .

migrations: venv ## Regenerate the app's migrations after a model change (before the first release)
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) -m django makemigrations wagtail_client_billing

# The languages the app ships catalogues for; locale/en is the source translators start from.
LANGUAGES_SHIPPED ?= en de fr es nl pt_BR

messages: venv ## Refresh every shipped message catalogue (locale/en is the translators' source) and compile them
	cd wagtail_client_billing && DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=.. ../$(PY) -m django makemessages \
		$(foreach language,$(LANGUAGES_SHIPPED),-l $(language)) --ignore "testing/*"
	cd wagtail_client_billing && DJANGO_SETTINGS_MODULE=tests.settings PYTHONPATH=.. ../$(PY) -m django compilemessages

clean: ## Remove the venv, builds and the demo database
	rm -rf $(VENV) dist build *.egg-info example_project/db.sqlite3 .demo
