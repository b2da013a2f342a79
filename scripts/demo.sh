#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the single-machine demo.
# Extra arguments go to `baton demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
exec .venv/bin/baton demo "$@"
