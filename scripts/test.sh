#!/usr/bin/env bash
# The README's second command (and CI's): set up .venv with the test extras and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh cpu,demo,test
.venv/bin/ruff check batchrank tests scripts
exec .venv/bin/python -m pytest "$@"
