#!/usr/bin/env bash
# The README's first command: set up .venv, install the demo model, and run the embedded demo job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh cpu,demo
.venv/bin/python -m batchrank.models.demo_model models/all-MiniLM-L6-v2
.venv/bin/batchrank run jobs/demo.yaml "$@"
