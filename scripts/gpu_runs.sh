#!/usr/bin/env bash
# The measurement runs behind docs/benchmarks.md, on the lent GPU machine, after the bundle of
# ../shared/gpu/README.md is unpacked into /tmp/site. One argument per run; each run writes its table, JSON and log
# under $OUT (the device tool brings them back). A device call may run 600 s at most: pass a few runs per call.
#
#   bash scripts/gpu_runs.sh prep default            # 0.6B, 200 queries x 100: batchrank defaults vs plain vLLM
#   SHAPE=4b bash scripts/gpu_runs.sh prep vllm epg2 # 4B: plain vLLM, then batchrank with two engines on the GPU
#   DOCS=1000 QUERIES=20 bash scripts/gpu_runs.sh prep default
#   bash scripts/gpu_runs.sh probe                   # where one engine's time goes, and 2 or 3 engines in processes
#   bash scripts/gpu_runs.sh overhead                # local vs Ray with one engine, a long run (issue 3)
#   SHAPE=4b QUERIES=2000 bash scripts/gpu_runs.sh prep scale1   # then, in the next call: scale2 (issue 5, 2 GPUs)
#   SHAPE=8b QUERIES=500 bash scripts/gpu_runs.sh prep tp        # 8B: one tensor-parallel engine vs two 1-GPU ones
#   MAX_LEN=32768 DOC_WORDS=8000:30000 QUERIES=10 DOCS=50 bash scripts/gpu_runs.sh prep longdoc   # vs plain vLLM
#   MAX_LEN=32768 DOC_WORDS=12000:40000 QUERIES=2 DOCS=10 bash scripts/gpu_runs.sh prep memory    # memory bound
#   bash scripts/gpu_runs.sh prep invariant          # model.batch_invariant: scores across chunk sizes, and its cost
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=/tmp/site:. HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SHAPE=${SHAPE:-0.6b}; DOCS=${DOCS:-100}; QUERIES=${QUERIES:-200}; MAX_LEN=${MAX_LEN:-2048}; DOC_WORDS=${DOC_WORDS:-52:400}
W=/tmp/bench-$SHAPE-$QUERIES-$DOCS-$MAX_LEN-${DOC_WORDS/:/-}
DEVICE=${DEVICE:-cuda}; DTYPE=${DTYPE:-bfloat16}  # DEVICE=cpu DTYPE=float32 SHAPE=tiny: a dry run on a laptop
common=(--shape "$SHAPE" --device "$DEVICE" --dtype "$DTYPE" --queries "$QUERIES" --docs-per-query "$DOCS" --max-model-len "$MAX_LEN"
        --doc-words "$DOC_WORDS" --work "$W" --system-timeout 560 --hf-max-pairs 5000)
compare=(python3 scripts/compare_runs.py --pairs "$W/pairs.parquet" --model "$W/model-$SHAPE" --max-model-len "$MAX_LEN"
         --dtype "$DTYPE")
nvidia-smi -L 2>/dev/null || echo "no GPU: $DEVICE"
for run in "$@"; do
  tag=$SHAPE-$QUERIES-$DOCS-$run; started=$(date +%s)
  bench=(python3 scripts/bench.py "${common[@]}" --out-md "$OUT/bench-$tag.md" --out-json "$OUT/bench-$tag.json")
  case $run in
    prep) python3 scripts/bench.py "${common[@]}" --prepare-only ;;
    default) "${bench[@]}" --systems batchrank,vllm ;;
    default_hf) "${bench[@]}" --systems batchrank,vllm,hf ;;
    vllm) "${bench[@]}" --systems vllm ;;
    hf) "${bench[@]}" --systems hf ;;
    epg1|epg2|epg3) "${bench[@]}" --systems batchrank --run-json "{\"engines_per_gpu\": ${run#epg}}" ;;
    local_group) "${bench[@]}" --systems batchrank --run-json '{"executor": "local", "engine_batch_pairs": 20000}' ;;
    invariant) for on in false true; do  # bit-exact across chunk sizes with it, and what it costs
                 "${compare[@]}" --work "$W/invariant-$on" --chunk-size 2000 --out-json "$OUT/compare-$tag-$on.json" \
                   --config chunks2000=run.executor=local,model.batch_invariant=$on \
                   --config chunks500=run.executor=local,run.chunk_size=500,model.batch_invariant=$on
               done ;;
    longdoc) "${bench[@]}" --systems batchrank,vllm ;;
    memory) python3 scripts/memory_run.py --model "$W/model-$SHAPE" --max-model-len "$MAX_LEN" --dtype "$DTYPE" \
              --doc-words "$DOC_WORDS" --queries "$QUERIES" --docs-per-query "$DOCS" --work "$W/memory" \
              --out-md "$OUT/memory-$tag.md" ;;
    probe) for mode in "--mode split" "--mode procs --engines 2" "--mode procs --engines 3"; do
             timeout 300 python3 scripts/engine_probe.py --work "$W" --model "$W/model-$SHAPE" --dtype "$DTYPE" --max-model-len "$MAX_LEN" $mode --out "$OUT/probe-$tag.jsonl"
           done ;;
    overhead) "${compare[@]}" --work "$W/overhead" --chunk-size 10000 --out-json "$OUT/compare-$tag.json" \
                --config local=run.executor=local,run.engine_batch_pairs=20000 \
                --config ray=run.executor=ray,run.num_workers=1,run.engines_per_gpu=1 ;;
    scale1) "${compare[@]}" --work "$W/scale" --chunk-size 2000 --out-json "$OUT/compare-$tag.json" \
              --config one-gpu=run.executor=ray,run.num_workers=1,run.engines_per_gpu=1,run.engine_batch_pairs=20000 ;;
    scale2) "${compare[@]}" --work "$W/scale" --chunk-size 2000 --out-json "$OUT/compare-$tag.json" \
              --config two-gpus=run.executor=ray,run.num_workers=2,run.engines_per_gpu=1,run.engine_batch_pairs=20000 --kill-in two-gpus:30 ;;
    tp) "${compare[@]}" --work "$W/tp" --chunk-size 2000 --out-json "$OUT/compare-$tag.json" \
          --config tensor-parallel=run.executor=ray,run.num_workers=1,model.engine.tensor_parallel_size=2 \
          --config two-workers=run.executor=ray,run.num_workers=2,run.engines_per_gpu=1 ;;
    *) echo "unknown run: $run"; exit 2 ;;
  esac > "$OUT/log-$tag.txt" 2>&1
  echo "$tag rc=$? $(( $(date +%s) - started )) s"
  grep -h "pairs/s\|^PROBE\|^| \(local\|ray\|one\|two\|tensor\)" "$OUT/log-$tag.txt" | grep -v "^| system" | tail -4
  pkill -9 -f "VLLM::" 2>/dev/null; ray stop --force >/dev/null 2>&1; sleep 1
done
