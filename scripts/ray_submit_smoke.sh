#!/usr/bin/env bash
# Submit a small batchrank job to a Ray cluster started on this machine, the way a cluster user would:
#   ray start --head; ray job submit --working-dir . -- batchrank run JOB
# usage: bash scripts/ray_submit_smoke.sh MODEL_DIR WORK_DIR      (run from the repo root; CI runs it via pytest)
#   RUNTIME_ENV_VARS='{"HF_HUB_OFFLINE": "1", ...}'   env_vars of the job's own runtime env (optional)
# The cluster is this script's own: its own temporary directory and ports, stopped at the end by ending the
# `ray start --block` process that started it. Never `ray stop`, which ends every Ray cluster on the machine.
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
# Short: Ray's unix sockets live under it, and their paths may not exceed 107 characters.
ray_tmp=$(mktemp -d /tmp/br-smoke-XXXXXX)
export RAY_TMPDIR=$ray_tmp
read -r gcs dashboard agent client metrics runtime_env_agent < <("$bin/python" -c '
import socket
sockets = [socket.socket() for _ in range(6)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])')
# Ray 2.5x clusters use token authentication: one token for the cluster and its clients.
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$("$bin/python" -c 'import secrets; print(secrets.token_hex(32))')
"$bin/ray" start --head --block --temp-dir "$ray_tmp/ray" --port "$gcs" --num-cpus 2 --disable-usage-stats \
  --dashboard-host 127.0.0.1 --dashboard-port "$dashboard" --dashboard-agent-listen-port "$agent" \
  --ray-client-server-port "$client" --metrics-export-port "$metrics" --runtime-env-agent-port "$runtime_env_agent" \
  >"$work/ray-head.log" 2>&1 &
head=$!
stop_head() {
  kill -TERM "$head" 2>/dev/null || true  # its SIGTERM handler stops the node's processes
  wait "$head" 2>/dev/null || true
  "$bin/python" "$(dirname "$0")/../tests/ray_cluster.py" --remove "$ray_tmp" >/dev/null || true  # what is left
}
trap stop_head EXIT
export RAY_ADDRESS=http://127.0.0.1:$dashboard
deadline=$((SECONDS + 180))
until "$bin/ray" job list >/dev/null 2>&1; do
  if ((SECONDS > deadline)) || ! kill -0 "$head" 2>/dev/null; then
    echo "the Ray head did not come up in 180 s:" >&2; tail -20 "$work/ray-head.log" >&2; exit 1
  fi
  sleep 1
done
# --working-dir ships this checkout to the cluster, as on a real cluster; the job runs this venv's batchrank.
# The excludes keep what is not the project (the venv, models, outputs) out of the upload (Ray caps it at 100 MiB).
runtime_env=$("$bin/python" -c 'import json, os, sys
env = {"excludes": [".venv", ".git", "models", "out", ".gpu*", ".snap"]}
extra = json.loads(os.environ.get("RUNTIME_ENV_VARS") or "{}")
if extra: env["env_vars"] = extra
print(json.dumps(env))')
"$bin/ray" job submit --working-dir . --entrypoint-num-cpus 0 --runtime-env-json "$runtime_env" \
  -- "$bin/batchrank" run "$work/job.yaml"
test -f "$work/out/_SUCCESS"
echo "ray job submit: OK"
