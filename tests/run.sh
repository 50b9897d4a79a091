#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it. Services the tests need (PostgreSQL, the Berth
# servers, Chromium) are started by the tests themselves and stopped when they finish.
set -uo pipefail
cd "$(dirname "$0")/.."
export BERTH_REQUIRE_ALL="${BERTH_REQUIRE_ALL:-1}"
# Start a Docker engine if none answers, and stop it again afterwards (only if we started it).
started=$(scripts/system.sh dockerd-start || true)
# Lint first (ruff, rule set in pyproject.toml); then the tiers in order: unit, layout,
# integration, API, and the fuzz stage (tests/fuzz: schemathesis over the published spec, every
# operation with each role's token; a failure fails the run). Arguments replace the tiers
# (e.g. tests/api/test_apps.py -k install).
.venv/bin/ruff check .
lint=$?
if [ $# -eq 0 ]; then set -- tests/unit tests/test_layout.py tests/integration tests/api tests/fuzz; fi
.venv/bin/python -m pytest "$@"
status=$?
[ $lint -ne 0 ] && [ $status -eq 0 ] && status=$lint
[ "$started" = started ] && scripts/system.sh dockerd-stop
.venv/bin/python -m cli api-coverage | tail -1
exit $status
