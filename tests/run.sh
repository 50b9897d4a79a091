#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it. Services the tests need (PostgreSQL, the Berth
# servers, Chromium) are started by the tests themselves and stopped when they finish.
set -uo pipefail
cd "$(dirname "$0")/.."
export BERTH_REQUIRE_ALL="${BERTH_REQUIRE_ALL:-1}"
# Start a Docker engine if none answers, and stop it again afterwards (only if we started it).
started=$(scripts/system.sh dockerd-start || true)
# Lint first (ruff, rule set in pyproject.toml); then the tiers: unit, layout, integration, API,
# and the fuzz stage (tests/fuzz: schemathesis over the published spec, every operation with each
# role's token; a failure fails the run). Paths among the arguments replace the tiers
# (e.g. tests/api/test_apps.py -k install); options alone (e.g. --durations=50) are added to them.
.venv/bin/ruff check .
lint=$?
# Most of the run is waiting (servers, containers, health polls), so the tests run in
# BERTH_TEST_WORKERS pytest-xdist workers (default 2; 0 = one process), a whole file per worker
# (--dist loadfile: a module's server and fixtures stay in one process). With workers, the slowest
# tiers are handed out first so that no long file starts last; tests marked `serial` (they need
# the machine to themselves) then run alone in a second, one-process pass.
workers="${BERTH_TEST_WORKERS:-2}"
paths=0
for a in "$@"; do { [ -e "${a%%::*}" ] && paths=1; } || true; done
if [ $paths -eq 0 ]; then  # only options (e.g. --durations=50): the whole suite
  if [ "$workers" -gt 0 ]; then
    set -- tests/fuzz tests/api tests/integration tests/unit tests/test_layout.py "$@"
  else
    set -- tests/unit tests/test_layout.py tests/integration tests/api tests/fuzz "$@"
  fi
fi
if [ "$workers" -gt 0 ]; then
  .venv/bin/python -m pytest -n "$workers" --dist loadfile -m "not serial" "$@"
  status=$?
  if grep -rqs --include='*.py' 'mark\.serial' tests; then
    .venv/bin/python -m pytest -m serial "$@"
    serial=$?
    # 5: no test was selected (no `serial` test among the arguments), which is fine
    [ $status -eq 0 ] && [ $serial -ne 0 ] && [ $serial -ne 5 ] && status=$serial
  fi
else
  .venv/bin/python -m pytest "$@"
  status=$?
fi
[ $lint -ne 0 ] && [ $status -eq 0 ] && status=$lint
[ "$started" = started ] && scripts/system.sh dockerd-stop
.venv/bin/python -m cli api-coverage | tail -1
exit $status
