#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/test_compose.py -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

echo "test: .venv/bin/python -m pytest -q --durations=15 $*"
rc=0
.venv/bin/python -m pytest -q --durations=15 "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test: error: pytest collected no tests (exit 5); check the arguments and tests/" >&2
fi
exit "$rc"
