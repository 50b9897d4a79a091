# Berth: `make run` starts the server, `make test` runs the whole suite.
# Both set up everything they need on a fresh Debian machine (as root).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
export BERTH_DATA_DIR ?= $(CURDIR)/data

.PHONY: run test unit fuzz lint venv system-run system-test api-coverage bench soak clean

# A release staged by POST /cloudron/update is installed first (README, Updates of Berth).
run: .venv/.installed system-run
	$(PY) -m platform_update apply-staged
	$(PY) -m cli serve

test: .venv/.installed-test system-test
	bash tests/run.sh

# The fast tier: pure rules and the layout checks; no Docker, nginx or database server.
unit: .venv/.installed-test
	.venv/bin/python -m pytest -q tests/unit tests/test_layout.py

# The spec tells the truth: schemathesis over every operation with each role's token against a
# real server (also the last stage of `make test`). BERTH_FUZZ_EXAMPLES=n examples per operation.
fuzz: .venv/.installed-test
	.venv/bin/python -m pytest -q tests/fuzz

lint: .venv/.installed-test
	.venv/bin/ruff check .
	.venv/bin/lint-imports --no-cache

api-coverage: .venv/.installed
	@$(PY) -m cli api-coverage

# Each benchmark prints its figures beside a baseline measured in the same run.
bench: .venv/.installed-test
	@scripts/system.sh packages bench
	@started=$$(scripts/system.sh dockerd-start); \
	$(PY) bench/api.py && $(PY) bench/streams.py && $(PY) bench/apps.py && $(PY) bench/backups.py && $(PY) bench/restore.py \
	&& $(PY) bench/certificates.py && $(PY) bench/addons.py && $(PY) bench/mail.py && $(PY) bench/deploy.py \
	&& $(PY) bench/load.py; \
	status=$$?; [ "$$started" = started ] && scripts/system.sh dockerd-stop; exit $$status

# The soak test alone (bench/load.py: 50 clients, 5 minutes on SQLite then PostgreSQL; it fails on
# any error, lost update or "database is locked"). Shorter: make soak SOAK_ARGS="--duration 60".
soak: .venv/.installed-test
	@scripts/system.sh packages bench
	@started=$$(scripts/system.sh dockerd-start); \
	$(PY) bench/load.py $(SOAK_ARGS); \
	status=$$?; [ "$$started" = started ] && scripts/system.sh dockerd-stop; exit $$status

venv: .venv/.installed

.venv/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --disable-pip-version-check -e .
	touch $@

.venv/.installed-test: .venv/.installed
	$(PIP) install -q --disable-pip-version-check -e '.[test]'
	touch $@

# Debian packages (Docker engine, nginx; for tests also Chromium, PostgreSQL, busybox-static),
# installed only when missing; the server needs a Docker engine, so `make run` starts one.
system-run:
	@scripts/system.sh packages run
	@scripts/system.sh dockerd-start >/dev/null

system-test:
	@scripts/system.sh packages test

clean:
	rm -rf .venv data .pytest_cache
