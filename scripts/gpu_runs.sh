#!/usr/bin/env bash
# The measurement runs behind docs/benchmarks.md (issue 13), for the lent GPU machine once the bundle of
# ../shared/gpu/README.md is unpacked into /tmp/site. ONE entry per device call (a call may run 600 s), in priority
# order; each writes $OUT/ENTRY.md, $OUT/ENTRY.json and $OUT/ENTRY.log (3 of the 8 files a call brings back) and
# prints a short table at the end. Every bench run gets a deadline ($BUDGET s for the entry, 560 by default): a system
# that would run past it is cut short and reported, and the table is still written.
#
#   bash scripts/gpu_runs.sh t06       # then t4b, t8b, epg2-4b, epg3-06, fp8-8b, memory, invariant, overhead, ...
#   bash scripts/gpu_runs.sh dry [ENTRY...]   # every entry (or those named) on this CPU: tiny model, float32,
#                                             # a few pairs: the same commands, to catch a script bug before a call
# Processes are stopped by process group (benchlib.run_measured), never by name.
#
# Models are built once per machine into /tmp/br/SHAPE (0.6b 1.2 GB, 4b 8 GB, 8b 15 GB; the disk has 64 GiB) and
# reused by later calls on the same machine; after an entry, its model is deleted if less than $KEEP_FREE_GIB stay
# free. Estimates below are from the H100 rates of docs/benchmarks.md (0.6B plain vLLM ~2,000 pairs/s, batchrank
# two engines ~4,000; 4B plain ~820; 8B about half of 4B), engine starts of 40-90 s (the first one of a model on a
# machine fills vLLM's compile cache), ~20 s of process overhead a system, and Ray actors started per dataset.
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}; BUDGET=${BUDGET:-560}; KEEP_FREE_GIB=${KEEP_FREE_GIB:-20}
DRY=0; SHAPE_OVERRIDE=""; DEVICE=${DEVICE:-cuda}; DTYPE=${DTYPE:-bfloat16}; ROOT=${ROOT:-/tmp/br}
FP8=(--fp8-engine-json '{"quantization": "fp8"}' --fp8-dtype bfloat16)
INVARIANT=true; RAY_DEFAULT='{}'  # 0.6B: run.engines_per_gpu auto = 2 engines on the GPU = the Ray executor
export PYTHONPATH=/tmp/site:.

dry_settings() {  # the same commands on this CPU: tiny model, float32, a few pairs; what the CPU build can't run
  DRY=1; SHAPE_OVERRIDE=tiny; DEVICE=cpu; DTYPE=float32; ROOT=${ROOT_DRY:-/tmp/br-dry}; BUDGET=${BUDGET_DRY:-1500}
  export BATCHRANK_GPU_SUITE=cpu                   # tests/gpu/ on the CPU build
  export PYTHONPATH=.
  FP8=(--fp8-engine-json '{}' --fp8-dtype float32)  # the CPU build has no FP8 kernels: a bf16-free stand-in
  INVARIANT=false                                  # batch-invariant kernels are CUDA-only (batchrank refuses them)
  RAY_DEFAULT='{"executor": "ray"}'                # auto picks Ray on the GPU (2 engines); name it on the CPU
}

# sizes: on the GPU as named; dry: a few pairs (dataset DOCS:QUERIES)
size() { if [ "$DRY" = 1 ]; then echo "$2"; else echo "$1"; fi; }

bench() {  # bench ENTRY SHAPE [bench.py arguments]; several in one entry share its budget
  local entry=$1 shape=${SHAPE_OVERRIDE:-$2} left=$(( BUDGET - (SECONDS - ENTRY_STARTED) )); shift 2
  [ "$left" -gt 60 ] || { echo "FAILED: $entry: no time left in the entry's budget"; return 1; }
  "$PY" scripts/bench.py --shape "$shape" --device "$DEVICE" --dtype "$DTYPE" --work "$ROOT/$shape" --title "$entry" \
    --deadline "$left" --out-md "$OUT/$entry.md" --out-json "$OUT/$entry.json" "$@"
}

# A lever measured in one entry decides batchrank's model.engine for the later entries of the same machine:
# choose_engine DEFAULT_JSON VARIANT_JSON ENGINE_JSON writes ENGINE_JSON to $ROOT/engine-choice.json when the variant
# was more than 3% faster than batchrank's defaults on each dataset both scored, or the defaults failed; else {}.
choose_engine() {
  "$PY" - "$@" "$ROOT/engine-choice.json" <<'PYTHON'
import json, sys
default_path, variant_path, variant_engine, choice_path = sys.argv[1:5]
def rates(path):
    try:
        runs = json.load(open(path))["runs"]
    except (OSError, ValueError, KeyError):
        return {}
    return {name: run["systems"]["batchrank"].get("pairs_per_second") for name, run in runs.items()
            if "batchrank" in run.get("systems", {})}
default, variant = rates(default_path), rates(variant_path)
both = [n for n in variant if variant[n] and n in default]
wins = bool(variant) and all(variant[n] for n in variant) and (
    not both or any(not default[n] for n in both) or all(variant[n] > 1.03 * default[n] for n in both))
choice = json.loads(variant_engine) if wins else {}
json.dump(choice, open(choice_path, "w"))
print(f"engine choice for later entries: {json.dumps(choice)} (defaults {default}, variant {variant})")
PYTHON
}
engine_choice() { cat "$ROOT/engine-choice.json" 2>/dev/null || echo '{}'; }

prepare() {  # prepare SHAPE DATASET: the model and one dataset, then print the dataset's path
  local shape=${SHAPE_OVERRIDE:-$1}
  "$PY" scripts/bench.py --shape "$shape" --device "$DEVICE" --dtype "$DTYPE" --work "$ROOT/$shape" \
    --datasets "$2" --prepare-only >&2 || return 1
  "$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); print(next(iter(c["datasets"].values())))' \
    "$ROOT/$shape/bench-config.json"
}

compare() {  # compare ENTRY SHAPE DATASET RUNS [compare_runs.py arguments]: RUNS share the entry's budget
  local entry=$1 shape=${SHAPE_OVERRIDE:-$2} pairs; pairs=$(prepare "$2" "$3") || return 1
  local runs=$4; shift 4
  "$PY" scripts/compare_runs.py --pairs "$pairs" --model "$ROOT/$shape/model-$shape" --dtype "$DTYPE" \
    --work "$ROOT/$shape/$entry" --run-timeout $(( (BUDGET - 40) / runs )) --title "$entry" \
    --out-md "$OUT/$entry.md" --out-json "$OUT/$entry.json" "$@"
}

run_entry() {
  case $1 in
    # 1. 0.6B, batchrank's defaults (Ray, 2 engines) vs plain vLLM, 100 and 1000 candidates a query. ~515 s:
    #    build 30 + data 25 (kept for later entries); plain 195 (start ~90 cold, 100k pairs 50 s, 50k 25 s);
    #    batchrank 265 (2 x: actors and engines ~90, scoring 25 or 13 s, teardown 15)
    t06) bench t06 0.6b --datasets "$(size 100:1000,1000:50 20:4,50:2)" --systems vllm,batchrank \
           --run-json "$RAY_DEFAULT" ;;
    # Fourth GPU session (issue 13): vLLM's async scheduling (on by default in batchrank on CUDA, off in vLLM for
    # pooling models), 8B, and 0.6B again. In this order; each later entry takes the engine choice of s4.
    # s4. 4B: plain vLLM and batchrank's defaults (local executor, one engine) on 100 and 1000 candidates (25,000
    #    pairs each, ~30 s for plain vLLM), then batchrank with async scheduling off on 100 candidates (the lever's
    #    before, same machine). ~530 s: build 55 + plain 177 (start 95 cold) + batchrank 2 x (start 60, scoring 25)
    #    + 20 + the variant 105
    s4) local defaults variant
        bench s4 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems vllm,batchrank; defaults=$?
        bench s4-sync 4b --datasets "$(size 100:250 20:4)" --systems batchrank --engine-json '{"async_scheduling": false}'
        variant=$?
        choose_engine "$OUT/s4.json" "$OUT/s4-sync.json" '{"async_scheduling": false}'
        return $(( defaults || variant )) ;;
    # s8. 8B: plain vLLM and batchrank (s4's engine choice), one local engine, 100 and 1000 candidates (13,000 pairs
    #    each, ~30 s for plain vLLM). ~520 s: build 100 + plain 194 (start 110 cold) + batchrank 2 x (70 + 32) + 20
    s8) bench s8 8b --datasets "$(size 100:130,1000:13 20:4,50:2)" --systems vllm,batchrank \
          --engine-json "$(engine_choice)" --run-json '{"engines_per_gpu": 1}' ;;
    # s06. 0.6B: plain vLLM and batchrank's defaults (Ray, 2 engines; s4's engine choice) on 100,000 pairs (100
    #    candidates). ~345 s: build 30 + data 25 + plain 160 (start 90 cold, 50 s of scoring) + batchrank 130
    s06) bench s06 0.6b --datasets "$(size 100:1000 20:4)" --systems vllm,batchrank --run-json "$RAY_DEFAULT" \
           --engine-json "$(engine_choice)" ;;
    # s8-fp8. 8B FP8 and its drift from batchrank bf16 on the same 13,000 pairs (s4's engine choice; ratio against
    #    s8's plain vLLM). ~260 s with s8's model and compile cache
    s8-fp8) bench s8-fp8 8b --datasets "$(size 100:130 20:4)" --systems batchrank,fp8 "${FP8[@]}" \
              --engine-json "$(engine_choice)" --run-json '{"engines_per_gpu": 1}' ;;
    # 2. 4B: plain vLLM, batchrank with one local engine (the default above 4 GiB of weights) on 100 and 1000
    #    candidates (25,000 pairs each: ~30 s for plain vLLM), FP8 on 100 with its drift from batchrank bf16. ~520 s:
    #    build 55 + plain 177 (start 95 cold) + batchrank 143 (start 60) + FP8 140 (start 95: its own compile)
    t4b) bench t4b 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems vllm,batchrank,fp8 \
           --fp8-datasets "$(size 100:250 20:4)" "${FP8[@]}" --run-json '{"engines_per_gpu": 1}' ;;
    # 3. 8B: plain vLLM and batchrank with one local engine, 13,000 pairs each (~30 s for plain vLLM), then FP8 on
    #    100 candidates with its drift from batchrank bf16 (last: the deadline cuts it first). ~445 s + FP8 ~120 s:
    #    build 100 + plain 190 (start 110 cold) + batchrank 155 (start 70) + FP8 (start ~90: its own compile)
    t8b) bench t8b 8b --datasets "$(size 100:130,1000:13 20:4,50:2)" --systems vllm,batchrank,fp8 \
           --fp8-datasets "$(size 100:130 20:4)" "${FP8[@]}" --run-json '{"engines_per_gpu": 1}' ;;
    # 4. 8B FP8 and its drift from batchrank bf16 on the same 13,000 pairs (ratio: against t8b's plain vLLM, the same
    #    machine). ~265 s with t8b's model and compile cache (+100 s for a build on a fresh machine)
    fp8-8b) bench fp8-8b 8b --datasets "$(size 100:130 20:4)" --systems batchrank,fp8 "${FP8[@]}" \
              --run-json '{"engines_per_gpu": 1}' ;;
    # 5. 4B with two engines on the GPU (Ray), 100 and 1000 candidates (ratio: against t4b's plain vLLM). ~290 s
    #    with t4b's model: 2 x (actors and engines ~90, scoring 30, teardown 15) + 20 (+55 for a build)
    epg2-4b) bench epg2-4b 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems batchrank \
               --run-json '{"executor": "ray", "engines_per_gpu": 2}' ;;
    # 2r. 4B again after t4b's local engines failed to start ("Engine core initialization failed", the GPU free):
    #    batchrank with one engine in a Ray actor (the path that worked at 0.6B), both datasets, and FP8 on 100
    #    candidates, against t4b's plain vLLM (same machine kind); then the local executor once more through the
    #    CLI, whose OUTPUT/logs/engine.log keeps the engine core's own error lines. ~480 s
    t4b-ray) bench t4b-ray 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems batchrank,fp8 \
               --fp8-datasets "$(size 100:250 20:4)" "${FP8[@]}" \
               --run-json '{"executor": "ray", "num_workers": 1, "engines_per_gpu": 1}'
             local_diagnosis "${SHAPE_OVERRIDE:-4b}" ;;
    # 5b. 0.6B with three engines on the GPU (Ray), 100 and 1000 candidates (ratio: against t06's plain vLLM): whether
    #    auto should give a small model three engines instead of two. ~280 s with t06's model and data
    epg3-06) bench epg3-06 0.6b --datasets "$(size 100:1000,1000:50 20:4,50:2)" --systems batchrank \
               --run-json '{"executor": "ray", "engines_per_gpu": 3}' ;;
    # 6. Memory with documents 1.25-3x max_model_len 32,768 in tokens (20 pairs), against MS MARCO-length ones, one
    #    local engine; fails unless every long document was cut. ~210 s: 2 x (start 60, scoring <10, overhead 25)
    memory) prepare 0.6b "$(size 100:20 4:2)" >/dev/null &&
            "$PY" scripts/memory_run.py --model "$ROOT/${SHAPE_OVERRIDE:-0.6b}/model-${SHAPE_OVERRIDE:-0.6b}" \
              --dtype "$DTYPE" --max-model-len "$(size 32768 2048)" --queries 2 --docs-per-query "$(size 10 2)" \
              --work "$ROOT/memory" --run-timeout $(( (BUDGET - 60) / 2 )) --out-md "$OUT/memory.md" \
              --out-json "$OUT/memory.json" ;;
    # 7. model.batch_invariant off and on, chunk_size 2000 against 500 on the same 20,000 pairs: bit-identical
    #    scores?, and the cost (pairs/s on vs off). 4 runs x ~90 s = ~380 s
    invariant) compare invariant 0.6b "$(size 100:200 20:4)" 4 --chunk-size 2000 \
                 --config off-2000=run.executor=local,model.batch_invariant=false \
                 --config off-500=run.executor=local,model.batch_invariant=false,run.chunk_size=500 \
                 --config on-2000=run.executor=local,model.batch_invariant=$INVARIANT \
                 --config on-500=run.executor=local,model.batch_invariant=$INVARIANT,run.chunk_size=500 \
                 --check off-500:off-2000 --check on-2000:off-2000 --check on-500:on-2000 ;;
    # 8. The Ray executor's overhead against the local executor, one engine each, 100,000 pairs (~45 s of scoring
    #    each). ~270 s
    overhead) compare overhead 0.6b "$(size 100:1000 20:4)" 2 --chunk-size 2000 \
                --config local=run.executor=local,run.engines_per_gpu=1 \
                --config ray=run.executor=ray,run.num_workers=1,run.engines_per_gpu=1 ;;
    # 9. Batch invariance without the prefix cache (a cached prefix is computed in another batch shape): whether the
    #    cache is what breaks bit-identity, should 7 show any. 2 runs, ~200 s
    invariant-nocache) compare invariant-nocache 0.6b "$(size 100:200 20:4)" 2 --chunk-size 2000 \
        --config on-2000=run.executor=local,model.batch_invariant=$INVARIANT,model.engine.enable_prefix_caching=false \
        --config on-500=run.executor=local,model.batch_invariant=$INVARIANT,model.engine.enable_prefix_caching=false\
,run.chunk_size=500 ;;
    # Issue 20. probe: does plain vLLM (llm.classify on token ids, no batchrank) finish pooling prompts that fill
    #    max_model_len 32,768? Eight cases at once on the GPU, each its own engine (scripts/long_prompt_probe.py).
    #    ~330 s: build 30 + the compiled cases' engine start ~150 (the eager ones ~30) + 45 s hang timeout
    probe) "$PY" -m batchrank.models.random_qwen3 "$ROOT/probe-model" --shape "${SHAPE_OVERRIDE:-0.6b}" \
             --device "$DEVICE" > /dev/null &&
           "$PY" scripts/long_prompt_probe.py --model "$ROOT/probe-model" --max-model-len "$(size 32768 1024)" \
             --dtype "$DTYPE" --kv-gib "$(size 12 0.3)" --timeout "$(size 45 120)" --deadline $(( BUDGET - 60 )) \
             --work "$ROOT/probe" --out-md "$OUT/probe.md" --out-json "$OUT/probe.json" ;;
    # fix-cost: what chunked prefill off (batchrank's setting since issue 20) costs at MS MARCO shapes: 4B, one local
    #    engine, 50,000 pairs (100 candidates), batchrank's defaults against the same with chunked prefill on (the
    #    setting before), in one call. ~430 s: build 55 + 2 x (start 60-95, scoring ~52, 20)
    fix-cost) bench fix-cost 4b --datasets "$(size 100:500 20:4)" --systems batchrank --run-json '{"engines_per_gpu": 1}'
              defaults=$?
              bench fix-cost-chunked 4b --datasets "$(size 100:500 20:4)" --systems batchrank \
                --run-json '{"engines_per_gpu": 1}' --engine-json '{"enable_chunked_prefill": true}'
              return $(( defaults || $? )) ;;
    # The GPU suite (tests/gpu/, issue 20) in two calls: the 0.6B long-document run (~200 s: build 30, two engine
    #    starts at max_model_len 32,768, ~20 s of scoring), then the rest (~330 s: kinds in float32 and bf16, a
    #    SIGKILLed run, Ray with two engines on the GPU, rejects/status/exit codes). $OUT/gpu-suite.md has each
    #    test's outcome and time; $OUT/memory.md the long run's memory and pairs/s.
    gpu-suite-long) GPU_SUITE_OUT=$OUT "$PY" -m pytest tests/gpu/test_long_documents.py -q -p no:cacheprovider \
                      -o addopts="" --timeout $(( BUDGET - 20 )) ;;
    gpu-suite-rest) GPU_SUITE_OUT=$OUT "$PY" -m pytest tests/gpu -q -p no:cacheprovider -o addopts="" \
                      --deselect tests/gpu/test_long_documents.py --timeout 300 ;;
    # memory-8b: the long-document memory run (documents 1.25-3x max_model_len 32,768) on the 8B shape; the MS
    #    MARCO-length half is the throughput tables' (~300 s: build 100, engine start ~110 cold, scoring ~40)
    memory-8b) "$PY" -m batchrank.models.random_qwen3 "$ROOT/8b/model-8b" --shape "${SHAPE_OVERRIDE:-8b}" \
                 --device "$DEVICE" > /dev/null &&
               "$PY" scripts/memory_run.py --model "$ROOT/8b/model-8b" --dtype "$DTYPE" --runs long \
                 --max-model-len "$(size 32768 1024)" --queries 2 --docs-per-query "$(size 10 2)" \
                 --run-json '{"executor": "local", "stall_timeout": 300}' --work "$ROOT/memory-8b" \
                 --run-timeout $(( BUDGET - 140 )) --out-md "$OUT/memory-8b.md" --out-json "$OUT/memory-8b.json" ;;
    *) echo "unknown entry: $1"; return 2 ;;
  esac
}

local_diagnosis() {  # one short local-executor run through the CLI; its engine log comes back as $OUT/engine.log
  local shape=$1 job=$ROOT/diagnosis.yaml data
  data=$(ls "$ROOT/$shape/data/"*.parquet 2>/dev/null | head -1)
  [ -n "$data" ] || return 0
  printf 'input: {path: %s}\nmodel: {path: %s, dtype: %s, max_model_len: 2048}\nrun: {executor: local}\noutput: {path: %s}\n' \
    "$data" "$ROOT/$shape/model-$shape" "$DTYPE" "$ROOT/diagnosis-out" > "$job"
  timeout 150 "$PY" -m batchrank.cli run "$job" --overwrite --preview 0 > "$OUT/diagnosis.txt" 2>&1
  echo "local diagnosis: rc=$?" >> "$OUT/diagnosis.txt"
  cp "$ROOT/diagnosis-out/logs/engine.log" "$OUT/engine.log" 2>/dev/null
  grep -i -m 20 "error\|exception\|cuda" "$OUT/engine.log" 2>/dev/null | cut -c1-300
  tail -3 "$OUT/diagnosis.txt"
}

summary() {  # the entry's rows, short: bench (dataset, system, pairs, pairs/s, ratio, % computed floor, hits)
  local md
  for md in "$OUT/$1.md" "$OUT/$1"-*.md; do [ -f "$md" ] && summary_of "$md"; done
  [ -f "$OUT/$1.md" ] || echo "(no $OUT/$1.md)"
}

summary_of() {
  local md=$1
  grep -h '^| ' "$md" | grep -v '^| ---' | awk -F'|' '
    /candidates x queries/ {mode = "bench"} /^\| run / {mode = "compare"} /^\| documents/ {mode = "memory"}
    mode == "bench" {printf "%-8s|%-62.62s|%8s|%8s|%7s|%8s|%6s\n", $2, $3, $4, $5, $6, $9, $10; next}
    mode == "compare" {printf "%-18s|%8s|%10s|%7s|%6s|%10s|%6s\n", $2, $4, $5, $6, $9, $15, $16; next}
    {print}'
  grep -h '^- .*scores\|^FAILED' "$md" | cut -c1-230
}

free_disk_for() {  # delete the entry's model if the disk is getting tight
  local shape=${SHAPE_OVERRIDE:-$1} free
  free=$(df -k --output=avail "$ROOT" 2>/dev/null | tail -1)
  if [ -n "$free" ] && [ "$free" -lt $(( KEEP_FREE_GIB * 1024 * 1024 )) ]; then
    echo "disk: $(( free / 1024 / 1024 )) GiB free: removing $ROOT/$shape/model-$shape"
    rm -rf "$ROOT/$shape/model-$shape"
  fi
}

shape_of() {
  case $1 in t06|s06|epg3-06|memory|invariant|overhead|invariant-nocache|probe|gpu-suite-*) echo 0.6b ;;
    t4b|s4|t4b-ray|epg2-4b|fix-cost) echo 4b ;;
    *) echo 8b ;; esac
}

one() {
  local entry=$1 started=$SECONDS rc
  ENTRY_STARTED=$SECONDS
  mkdir -p "$ROOT"; rm -f "$OUT/$entry.md" "$OUT/$entry.json" "$OUT/$entry"-*.md "$OUT/$entry"-*.json
  run_entry "$entry" > "$OUT/$entry.log" 2>&1; rc=$?
  echo "== $entry: rc=$rc, $(( SECONDS - started )) s (log $OUT/$entry.log)"
  summary "$entry"
  [ "$rc" = 0 ] || tail -5 "$OUT/$entry.log"
  free_disk_for "$(shape_of "$entry")"
  return "$rc"
}

ENTRIES=(gpu-suite-long gpu-suite-rest memory-8b probe fix-cost s4 s8 s06 s8-fp8 t06 t4b t4b-ray t8b epg2-4b epg3-06 fp8-8b memory invariant overhead invariant-nocache)
nvidia-smi -L 2>/dev/null || echo "no GPU"
if [ "${1:-}" = dry ]; then  # dry [ENTRY...]: every entry (or those named), one after another
  dry_settings; failed=0; started=$SECONDS; shift
  [ $# -gt 0 ] && ENTRIES=("$@")
  for entry in "${ENTRIES[@]}"; do one "$entry" || failed=$((failed + 1)); done
  echo "dry run: ${#ENTRIES[@]} entries, $failed failed, $(( SECONDS - started )) s"
  exit $(( failed > 0 ))
fi
[ $# -eq 1 ] || { echo "usage: bash scripts/gpu_runs.sh ENTRY|dry  (entries: ${ENTRIES[*]})"; exit 2; }
one "$1"
