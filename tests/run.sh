#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it. Services the tests need (PostgreSQL, the Berth
# servers, Chromium) are started by the tests themselves and stopped when they finish.
set -uo pipefail
cd "$(dirname "$0")/.."
export BERTH_REQUIRE_ALL="${BERTH_REQUIRE_ALL:-1}"
.venv/bin/python -m pytest "$@"
status=$?
.venv/bin/python cli.py api-coverage | tail -1
exit $status
