#!/usr/bin/env bash
# Submit a small batchrank job to a Ray cluster started on this machine, the way a cluster user would:
#   ray start --head; ray job submit --working-dir . -- batchrank run JOB
# usage: bash scripts/ray_submit_smoke.sh MODEL_DIR WORK_DIR      (run from the repo root; CI runs it via pytest)
set -euo pipefail
model=$1; work=$2
bin=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin
mkdir -p "$work"
"$bin/python" - "$model" "$work" <<'PY'
import sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq, yaml
model, work = sys.argv[1], Path(sys.argv[2])
rows = [{"query_id": f"q{q}", "query": f"query number {q}", "doc_id": f"d{q}-{d}", "document": f"passage {d} " * (d + 1)}
        for q in range(6) for d in range(10)]
pq.write_table(pa.Table.from_pylist(rows), work / "pairs.parquet")
spec = {"input": {"path": str(work / "pairs.parquet")},
        "model": {"path": model, "dtype": "float32", "max_model_len": 256},
        "run": {"executor": "ray", "num_workers": 1, "chunk_size": 20},
        "output": {"path": str(work / "out")}}
(work / "job.yaml").write_text(yaml.safe_dump(spec))
PY
export RAY_ADDRESS=http://127.0.0.1:8265
# Ray 2.5x clusters use token authentication: one token for the cluster and its clients.
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$("$bin/python" -c 'import secrets; print(secrets.token_hex(32))')
trap '"$bin/ray" stop --force >/dev/null 2>&1 || true' EXIT
"$bin/ray" start --head --num-cpus 2 --dashboard-host 127.0.0.1 --disable-usage-stats >/dev/null
# --working-dir ships this checkout to the cluster, as on a real cluster; the job runs this venv's batchrank.
# The excludes keep what is not the project (the venv, models, outputs) out of the upload (Ray caps it at 100 MiB).
"$bin/ray" job submit --working-dir . --entrypoint-num-cpus 0 \
  --runtime-env-json '{"excludes": [".venv", ".git", "models", "out", ".gpu*", ".snap"]}' \
  -- "$bin/batchrank" run "$work/job.yaml"
test -f "$work/out/_SUCCESS"
echo "ray job submit: OK"
