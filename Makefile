# Berth: `make run` starts the server, `make test` runs the whole suite.
# Both set up everything they need on a fresh Debian machine (as root).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
export BERTH_DATA_DIR ?= $(CURDIR)/data

# Debian packages the test suite drives for real: command -> package.
TEST_SYSTEM_PACKAGES := chromium chromium-driver postgresql

.PHONY: run test venv system-test api-coverage bench clean

run: .venv/.installed
	$(PY) cli.py serve

test: .venv/.installed-test system-test
	bash tests/run.sh

api-coverage: .venv/.installed
	@$(PY) cli.py api-coverage

bench: .venv/.installed-test system-test
	$(PY) bench/api.py

venv: .venv/.installed

.venv/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --disable-pip-version-check -e .
	touch $@

.venv/.installed-test: .venv/.installed
	$(PIP) install -q --disable-pip-version-check -e '.[test]'
	touch $@

# Install the Debian packages the tests need, once (apt-get update first, as on a fresh machine).
system-test:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

clean:
	rm -rf .venv data .pytest_cache
