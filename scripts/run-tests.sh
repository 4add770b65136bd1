#!/usr/bin/env bash
# Runs the whole suite; pytest's exit code 5 (no tests collected) is a failure we name.
set -uo pipefail
cd "$(dirname "$0")/.."
export HALL_TEST_PG_URL=${HALL_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
export HALL_TEST_REDIS_URL=${HALL_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
# Two workers (pytest-xdist): most tests wait on servers, browsers and serial lines, not on the CPU.
# Each worker has its own PostgreSQL database and Redis db (tests/conftest.py); a file stays on one worker.
workers=${HALL_TEST_WORKERS:-2}
dist=(); [[ $workers != 0 ]] && dist=(-n "$workers" --dist loadfile)
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "${dist[@]}" "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure of the suite, not a pass" >&2
  exit 1
fi
exit $rc
