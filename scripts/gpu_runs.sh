#!/usr/bin/env bash
# The measurement runs behind docs/benchmarks.md (issues 13 and 21), for the lent GPU machine once the bundle of
# ../shared/gpu/README.md is unpacked into /tmp/site. ONE entry per device call (a call may run 600 s); each writes
# $OUT/ENTRY.md, $OUT/ENTRY.json and $OUT/ENTRY.log (3 of the 8 files a call brings back) and prints a short table at
# the end. Every bench run gets a deadline ($BUDGET s for the entry, 560 by default): a system that would run past
# it is cut short and reported, and the table is still written. The tools are the package batchrank.bench, run as
# `python -m batchrank.bench.TOOL` (its --help says what each option does).
#
#   bash scripts/gpu_runs.sh anchor-4b # one entry a call, in the priority order below
#   bash scripts/gpu_runs.sh dry [ENTRY...]   # every entry (or those named) on this CPU: tiny model, float32,
#                                             # a few pairs: the same commands, to catch a script bug before a call
# Processes are stopped by process group (batchrank.bench.processes.run_measured), never by name.
#
# Priority order of issue 21 (each entry < 600 s with its model build and engine starts; every timed run scores for
# 60 s or more on the H200; same-shape entries back to back reuse the model and vLLM's compile cache):
#   1. anchor-4b   2. epg2-4b    3. anchor-8b   4. epg2-8b   5. profile-8b   6. anchor-06   7. epg3-06
#   8. profile-06  9. anchor-06k 10. c1000-06   11. overhead  12. invariant-cost
# (Issue 20's entries, gpu-suite-long, gpu-suite-kinds, gpu-suite-ops, memory-8b, probe and fix-cost, come first in ENTRIES.)
# The anchors (plain vLLM alone, one call and calls of 5,000/20,000/100,000 prompts) leave their report in
# $ROOT/results/; a later batchrank entry on the same machine takes it as --vllm-reference, so its ratios are
# against plain vLLM's best call size on the same kind of pairs. On a fresh machine (the anchor not there) the ratio
# reads n/a: both entries' JSON come back, and the figures can be set side by side by hand.
#
# Models are built once per machine into /tmp/br/SHAPE (0.6b 1.2 GB, 4b 8 GB, 8b 15 GB; the disk has 64 GiB) and
# reused by later calls on the same machine; after an entry, its model is deleted if less than $KEEP_FREE_GIB stay
# free. Estimates below are from the H200 rates of docs/benchmarks.md and issue 21 (0.6B plain vLLM one call 1,868
# pairs/s over 100,000 pairs and 1,282 over 200,000, batchrank two engines ~4,100; 4B plain 811, batchrank 963; 8B
# plain 482, batchrank 539), engine starts of 40-110 s (the first one of a model on a machine fills vLLM's compile
# cache), model builds of 30/55/100 s, ~20 s of data a 100,000 pairs, ~20 s of process overhead a system, and Ray
# actors started per dataset (~90 s with their engines, ~15 s to stop).
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}; BUDGET=${BUDGET:-560}; KEEP_FREE_GIB=${KEEP_FREE_GIB:-20}
DRY=0; SHAPE_OVERRIDE=""; DEVICE=${DEVICE:-cuda}; DTYPE=${DTYPE:-bfloat16}; ROOT=${ROOT:-/tmp/br}
CALLS=5000,20000,100000; PROFILE_PAIRS=5000  # plain vLLM's call sizes; the profiled run's pairs
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
  CALLS=16,40; PROFILE_PAIRS=100                   # calls smaller than the few pairs, so that they run too
}

# sizes: on the GPU as named; dry: a few pairs (dataset DOCS:QUERIES)
size() { if [ "$DRY" = 1 ]; then echo "$2"; else echo "$1"; fi; }

bench() {  # bench ENTRY SHAPE [throughput arguments]; several in one entry share its budget
  local entry=$1 shape=${SHAPE_OVERRIDE:-$2} left=$(( BUDGET - (SECONDS - ENTRY_STARTED) )) rc; shift 2
  [ "$left" -gt 60 ] || { echo "FAILED: $entry: no time left in the entry's budget"; return 1; }
  "$PY" -m batchrank.bench.throughput --shape "$shape" --device "$DEVICE" --dtype "$DTYPE" --work "$ROOT/$shape" \
    --title "$entry" --deadline "$left" --out-md "$OUT/$entry.md" --out-json "$OUT/$entry.json" "$@"; rc=$?
  mkdir -p "$ROOT/results"; cp "$OUT/$entry.json" "$ROOT/results/" 2>/dev/null  # for a later --vllm-reference
  return "$rc"
}

engines() {  # engines ENTRY SHAPE DATASET ANCHOR NAME RUN_JSON N: batchrank with RUN_JSON (as ENTRY-NAME), then with N
             # engines on each GPU (Ray), both against ANCHOR's plain vLLM
  local entry=$1 shape=$2 data=$3 anchor=$4 name=$5 run=$6 engines=$7 first second
  bench "$entry-$name" "$shape" --datasets "$data" --systems batchrank $(anchor_of "$anchor") --run-json "$run"
  first=$?
  bench "$entry" "$shape" --datasets "$data" --systems batchrank $(anchor_of "$anchor") \
    --run-json "{\"executor\": \"ray\", \"engines_per_gpu\": $engines}"; second=$?
  return $(( first || second ))
}

anchor_of() {  # anchor_of ENTRY: --vllm-reference to that anchor's report, if this machine ran it
  [ -f "$ROOT/results/$1.json" ] && echo "--vllm-reference $ROOT/results/$1.json"
}

profile() {  # profile ENTRY SHAPE [profile_step arguments]
  local entry=$1 shape=${SHAPE_OVERRIDE:-$2} left=$(( BUDGET - (SECONDS - ENTRY_STARTED) )); shift 2
  [ "$left" -gt 120 ] || { echo "FAILED: $entry: no time left in the entry's budget"; return 1; }
  "$PY" -m batchrank.bench.profile_step --shape "$shape" --device "$DEVICE" --dtype "$DTYPE" --work "$ROOT/$shape" \
    --title "$entry" --timeout $(( left - 60 )) --profile-pairs "$PROFILE_PAIRS" --out-md "$OUT/$entry.md" \
    --out-json "$OUT/$entry.json" "$@"
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
  "$PY" -m batchrank.bench.throughput --shape "$shape" --device "$DEVICE" --dtype "$DTYPE" --work "$ROOT/$shape" \
    --datasets "$2" --prepare-only >&2 || return 1
  "$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); print(next(iter(c["datasets"].values())))' \
    "$ROOT/$shape/bench-config.json"
}

compare() {  # compare ENTRY SHAPE DATASET RUNS [compare_runs arguments]: RUNS share the entry's budget
  local entry=$1 shape=${SHAPE_OVERRIDE:-$2} pairs; pairs=$(prepare "$2" "$3") || return 1
  local runs=$4; shift 4
  "$PY" -m batchrank.bench.compare_runs --pairs "$pairs" --model "$ROOT/$shape/model-$shape" --dtype "$DTYPE" \
    --work "$ROOT/$shape/$entry" --run-timeout $(( (BUDGET - 40) / runs )) --title "$entry" \
    --out-md "$OUT/$entry.md" --out-json "$OUT/$entry.json" "$@"
}

run_entry() {
  case $1 in
    # ---- Issue 21: plain vLLM at its best, the table finished, the profile. In the priority order above.
    # anchor-4b. 4B plain vLLM alone on 70,000 pairs (100 candidates): one llm.classify, then calls of 5,000 and
    #    20,000 (100,000 is the whole set: the one call), ~85 s each at ~820 pairs/s. ~440 s: build 55 + data 15 +
    #    start 95 cold + 3 x 85 + 20
    anchor-4b) bench anchor-4b 4b --datasets "$(size 100:700 20:4)" --systems vllm --vllm-calls "$CALLS" ;;
    # epg2-4b. 4B batchrank, its defaults (one local engine above 4 GiB of weights, async scheduling), then two
    #    engines on the GPU (Ray), async as well; 70,000 pairs (~73 s at 963 pairs/s, ~65 s with two engines if they
    #    gain 10%), against anchor-4b. ~400 s: defaults start 60 + 73 + 20; two engines: actors 90 + 65 + 15 + 20;
    #    + data 15 (+55 for a build)
    epg2-4b) engines epg2-4b 4b "$(size 100:700 20:4)" anchor-4b one '{}' 2 ;;
    # anchor-8b. 8B plain vLLM alone on 38,000 pairs: one call, calls of 5,000 and 20,000, ~79 s each at ~480
    #    pairs/s. ~480 s: build 100 + data 10 + start 110 cold + 3 x 79 + 20
    anchor-8b) bench anchor-8b 8b --datasets "$(size 100:380 20:4)" --systems vllm --vllm-calls "$CALLS" ;;
    # epg2-8b. 8B batchrank's defaults (one local engine) and two engines (Ray; 15 GiB of weights each fits the
    #    H200's 141 GiB), 38,000 pairs (~70 s at 539 pairs/s), against anchor-8b. ~470 s with a build: build 100 +
    #    data 10 + defaults 70 + 70 + 20 + two engines 100 + 65 + 15 + 20
    epg2-8b) engines epg2-8b 8b "$(size 100:380 20:4)" anchor-8b one '{}' 2 ;;
    # profile-8b. Where one engine step's time goes at 8B (batchrank's engine arguments): a clean run of 33,000 pairs
    #    (~65 s) for the step period and vLLM's MFU, then 5,000 pairs under vLLM's torch profiler (~10 s, more with
    #    the profiler's overhead). ~340 s with a build: build 100 + data 10 + start 110 + warm-up + 65 + 25 + trace 20
    profile-8b) profile profile-8b 8b --datasets "$(size 100:330 20:10)" ;;
    # anchor-06. 0.6B plain vLLM alone on 120,000 pairs (100 candidates): one call (~75 s), calls of 5,000, 20,000
    #    and 100,000 (~60-65 s each at ~1,900 pairs/s). ~430 s: build 30 + data 25 + start 90 + 75 + 3 x 63 + 20
    anchor-06) bench anchor-06 0.6b --datasets "$(size 100:1200 20:4)" --systems vllm --vllm-calls "$CALLS" ;;
    # epg3-06. 0.6B batchrank's defaults (Ray, two engines) and three engines, on 320,000 pairs (~78 s at 4,100
    #    pairs/s; ~64 s if three engines reach 5,000), against anchor-06 (its first 1,200 queries are these pairs'
    #    first). ~490 s: build 30 + data 65 + 2 x (actors 90 + ~70 + 15 + 20)
    epg3-06) engines epg3-06 0.6b "$(size 100:3200 20:6)" anchor-06 two "$RAY_DEFAULT" 3 ;;
    # profile-06. The same at 0.6B: a clean run of 180,000 pairs (~60-70 s for one engine with batchrank's
    #    arguments), 5,000 profiled. ~330 s: build 30 + data 40 + start 90 + 70 + 10 + trace 20 + 20
    profile-06) profile profile-06 0.6b --datasets "$(size 100:1800 20:10)" ;;
    # anchor-06k. 0.6B plain vLLM alone at 1,000 candidates a query: 120,000 pairs, one call and calls of 5,000,
    #    20,000 and 100,000. ~430 s, as anchor-06
    anchor-06k) bench anchor-06k 0.6b --datasets "$(size 1000:120 40:2)" --systems vllm --vllm-calls "$CALLS" ;;
    # c1000-06. 0.6B batchrank's defaults at 1,000 candidates a query: 320,000 pairs (~90 s at ~3,500 pairs/s),
    #    against anchor-06k. ~300 s: build 30 + data 65 + actors 90 + 90 + 15 + 20
    c1000-06) bench c1000-06 0.6b --datasets "$(size 1000:320 40:3)" --systems batchrank $(anchor_of anchor-06k) \
                --run-json "$RAY_DEFAULT" ;;
    # overhead. The Ray executor's cost against the local executor, one engine each, 0.6B, 200,000 pairs (~65-80 s
    #    of scoring each at 2,500-3,000 pairs/s for one engine). ~420 s: build 30 + data 45 + local (60 + 75 + 20) +
    #    Ray (90 + 75 + 25)
    overhead) compare overhead 0.6b "$(size 100:2000 20:4)" 2 --chunk-size 2000 \
                --config local=run.executor=local,run.engines_per_gpu=1 \
                --config ray=run.executor=ray,run.num_workers=1,run.engines_per_gpu=1 ;;
    # invariant-cost. model.batch_invariant's cost: off and on, one local engine, 0.6B, 200,000 pairs (~70 s off;
    #    on, slower by what it costs: ~140 s if it halves the rate); scores compared. ~450 s: build 30 + data 45 +
    #    off (60 + 70 + 20) + on (60 + 140 + 20)
    invariant-cost) compare invariant-cost 0.6b "$(size 100:2000 20:4)" 2 --chunk-size 2000 \
                      --config off=run.executor=local,model.batch_invariant=false \
                      --config on=run.executor=local,model.batch_invariant=$INVARIANT ;;
    # ---- Earlier sessions' entries (issue 13), kept to reproduce their sections of docs/benchmarks.md: their timed
    # runs are shorter than a minute, and their plain vLLM is one call a dataset (--vllm-calls none), as then. (The
    # names epg2-4b, epg3-06 and overhead now hold issue 21's longer runs above.)
    # 1. 0.6B, batchrank's defaults (Ray, 2 engines) vs plain vLLM, 100 and 1000 candidates a query. ~515 s:
    #    build 30 + data 25 (kept for later entries); plain 195 (start ~90 cold, 100k pairs 50 s, 50k 25 s);
    #    batchrank 265 (2 x: actors and engines ~90, scoring 25 or 13 s, teardown 15)
    t06) bench t06 0.6b --datasets "$(size 100:1000,1000:50 20:4,50:2)" --systems vllm,batchrank --vllm-calls none \
           --run-json "$RAY_DEFAULT" ;;
    # Fourth GPU session (issue 13): vLLM's async scheduling (on by default in batchrank on CUDA, off in vLLM for
    # pooling models), 8B, and 0.6B again. In this order; each later entry takes the engine choice of s4.
    # s4. 4B: plain vLLM and batchrank's defaults (local executor, one engine) on 100 and 1000 candidates (25,000
    #    pairs each, ~30 s for plain vLLM), then batchrank with async scheduling off on 100 candidates (the lever's
    #    before, same machine). ~530 s: build 55 + plain 177 (start 95 cold) + batchrank 2 x (start 60, scoring 25)
    #    + 20 + the variant 105
    s4) local defaults variant
        bench s4 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems vllm,batchrank --vllm-calls none; defaults=$?
        bench s4-sync 4b --datasets "$(size 100:250 20:4)" --systems batchrank --engine-json '{"async_scheduling": false}'
        variant=$?
        choose_engine "$OUT/s4.json" "$OUT/s4-sync.json" '{"async_scheduling": false}'
        return $(( defaults || variant )) ;;
    # s8. 8B: plain vLLM and batchrank (s4's engine choice), one local engine, 100 and 1000 candidates (13,000 pairs
    #    each, ~30 s for plain vLLM). ~520 s: build 100 + plain 194 (start 110 cold) + batchrank 2 x (70 + 32) + 20
    s8) bench s8 8b --datasets "$(size 100:130,1000:13 20:4,50:2)" --systems vllm,batchrank --vllm-calls none \
          --engine-json "$(engine_choice)" --run-json '{"engines_per_gpu": 1}' ;;
    # s06. 0.6B: plain vLLM and batchrank's defaults (Ray, 2 engines; s4's engine choice) on 100,000 pairs (100
    #    candidates). ~345 s: build 30 + data 25 + plain 160 (start 90 cold, 50 s of scoring) + batchrank 130
    s06) bench s06 0.6b --datasets "$(size 100:1000 20:4)" --systems vllm,batchrank --vllm-calls none --run-json "$RAY_DEFAULT" \
           --engine-json "$(engine_choice)" ;;
    # s8-fp8. 8B FP8 and its drift from batchrank bf16 on the same 13,000 pairs (s4's engine choice; ratio against
    #    s8's plain vLLM). ~260 s with s8's model and compile cache
    s8-fp8) bench s8-fp8 8b --datasets "$(size 100:130 20:4)" --systems batchrank,fp8 "${FP8[@]}" \
              --engine-json "$(engine_choice)" --run-json '{"engines_per_gpu": 1}' ;;
    # 2. 4B: plain vLLM, batchrank with one local engine (the default above 4 GiB of weights) on 100 and 1000
    #    candidates (25,000 pairs each: ~30 s for plain vLLM), FP8 on 100 with its drift from batchrank bf16. ~520 s:
    #    build 55 + plain 177 (start 95 cold) + batchrank 143 (start 60) + FP8 140 (start 95: its own compile)
    t4b) bench t4b 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems vllm,batchrank,fp8 --vllm-calls none \
           --fp8-datasets "$(size 100:250 20:4)" "${FP8[@]}" --run-json '{"engines_per_gpu": 1}' ;;
    # 3. 8B: plain vLLM and batchrank with one local engine, 13,000 pairs each (~30 s for plain vLLM), then FP8 on
    #    100 candidates with its drift from batchrank bf16 (last: the deadline cuts it first). ~445 s + FP8 ~120 s:
    #    build 100 + plain 190 (start 110 cold) + batchrank 155 (start 70) + FP8 (start ~90: its own compile)
    t8b) bench t8b 8b --datasets "$(size 100:130,1000:13 20:4,50:2)" --systems vllm,batchrank,fp8 --vllm-calls none \
           --fp8-datasets "$(size 100:130 20:4)" "${FP8[@]}" --run-json '{"engines_per_gpu": 1}' ;;
    # 4. 8B FP8 and its drift from batchrank bf16 on the same 13,000 pairs (ratio: against t8b's plain vLLM, the same
    #    machine). ~265 s with t8b's model and compile cache (+100 s for a build on a fresh machine)
    fp8-8b) bench fp8-8b 8b --datasets "$(size 100:130 20:4)" --systems batchrank,fp8 "${FP8[@]}" \
              --run-json '{"engines_per_gpu": 1}' ;;
    # 2r. 4B again after t4b's local engines failed to start ("Engine core initialization failed", the GPU free):
    #    batchrank with one engine in a Ray actor (the path that worked at 0.6B), both datasets, and FP8 on 100
    #    candidates, against t4b's plain vLLM (same machine kind); then the local executor once more through the
    #    CLI, whose OUTPUT/logs/engine.log keeps the engine core's own error lines. ~480 s
    t4b-ray) bench t4b-ray 4b --datasets "$(size 100:250,1000:25 20:4,50:2)" --systems batchrank,fp8 \
               --fp8-datasets "$(size 100:250 20:4)" "${FP8[@]}" \
               --run-json '{"executor": "ray", "num_workers": 1, "engines_per_gpu": 1}'
             local_diagnosis "${SHAPE_OVERRIDE:-4b}" ;;
    # 6. Memory with documents 1.25-3x max_model_len 32,768 in tokens (20 pairs), against MS MARCO-length ones, one
    #    local engine; fails unless every long document was cut. ~210 s: 2 x (start 60, scoring <10, overhead 25)
    memory) prepare 0.6b "$(size 100:20 4:2)" >/dev/null &&
            "$PY" -m batchrank.bench.memory_run --model "$ROOT/${SHAPE_OVERRIDE:-0.6b}/model-${SHAPE_OVERRIDE:-0.6b}" \
              --dtype "$DTYPE" --max-model-len "$(size 32768 2048)" --queries 2 --docs-per-query "$(size 10 2)" \
              --work "$ROOT/memory" --run-timeout $(( (BUDGET - 60) / 2 )) --out-md "$OUT/memory.md" \
              --out-json "$OUT/memory.json" ;;
    # 7. model.batch_invariant off and on, chunk_size 2000 against 500 on the same 20,000 pairs: bit-identical
    #    scores? (its cost on a run of a minute: invariant-cost). 4 runs x ~90 s = ~380 s
    invariant) compare invariant 0.6b "$(size 100:200 20:4)" 4 --chunk-size 2000 \
                 --config off-2000=run.executor=local,model.batch_invariant=false \
                 --config off-500=run.executor=local,model.batch_invariant=false,run.chunk_size=500 \
                 --config on-2000=run.executor=local,model.batch_invariant=$INVARIANT \
                 --config on-500=run.executor=local,model.batch_invariant=$INVARIANT,run.chunk_size=500 \
                 --check off-500:off-2000 --check on-2000:off-2000 --check on-500:on-2000 ;;
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
    # The GPU suite (tests/gpu/, issue 20) in three calls: the 0.6B long-document run (284 s on 2026-12-02: build
    #    30, two engine starts at max_model_len 32,768, ~20 s of scoring), the kinds (~250 s: float32 and bf16, one
    #    local engine each), then the operations (~300 s: a SIGKILLed run, Ray with two engines on the GPU from the
    #    CLI and from Python, rejects/status/exit codes). $OUT/gpu-suite.md has each test's outcome and time;
    #    $OUT/gpu-suite-live.md each outcome and a failure's whole report the moment it is known (a call cut by its
    #    deadline still says why); $OUT/memory.md the long run's memory and pairs/s.
    gpu-suite-long) GPU_SUITE_OUT=$OUT "$PY" -m pytest tests/gpu/test_long_documents.py -q -p no:cacheprovider \
                      -o addopts="" --timeout $(( BUDGET - 20 )) ;;
    gpu-suite-kinds) GPU_SUITE_OUT=$OUT "$PY" -m pytest tests/gpu/test_kinds.py -q -p no:cacheprovider -o addopts="" \
                      --timeout 200 ;;
    gpu-suite-ops) GPU_SUITE_OUT=$OUT "$PY" -m pytest tests/gpu/test_operations_gpu.py -q -p no:cacheprovider \
                      -o addopts="" --timeout 240 ;;
    # memory-8b: the long-document memory run (documents 1.25-3x max_model_len 32,768) on the 8B shape; the MS
    #    MARCO-length half is the throughput tables' (~300 s: build 100, engine start ~110 cold, scoring ~40)
    memory-8b) "$PY" -m batchrank.models.random_qwen3 "$ROOT/8b/model-8b" --shape "${SHAPE_OVERRIDE:-8b}" \
                 --device "$DEVICE" > /dev/null &&
               "$PY" -m batchrank.bench.memory_run --model "$ROOT/8b/model-8b" --dtype "$DTYPE" --runs long \
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

summary() {  # the entry's rows, short: bench (dataset, system, pairs, pairs/s, vs best, vs one call, % computed floor,
             # hits), compare_runs, memory_run and profile_step tables
  local md
  case $1 in gpu-suite-*) [ -f "$OUT/gpu-suite-live.md" ] && grep -h '^## ' "$OUT/gpu-suite-live.md"; return ;; esac
  for md in "$OUT/$1.md" "$OUT/$1"-*.md; do [ -f "$md" ] && summary_of "$md"; done
  [ -f "$OUT/$1.md" ] || echo "(no $OUT/$1.md)"
}

summary_of() {
  local md=$1
  grep -h '^| ' "$md" | grep -v '^| ---' | awk -F'|' '
    /candidates x queries/ {mode = "bench"} /^\| run / {mode = "compare"} /^\| documents/ {mode = "memory"}
    mode == "bench" {printf "%-8s|%-62.62s|%8s|%8s|%7s|%7s|%8s|%6s\n", $2, $3, $4, $5, $6, $7, $10, $11; next}
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
  case $1 in *06|*06k|memory|invariant*|overhead|probe|gpu-suite-*) echo 0.6b ;; *4b|s4|fix-cost) echo 4b ;;
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

ENTRIES=(gpu-suite-long gpu-suite-kinds gpu-suite-ops memory-8b probe fix-cost anchor-4b epg2-4b anchor-8b epg2-8b profile-8b anchor-06
         epg3-06 profile-06 anchor-06k c1000-06 overhead invariant-cost s4 s8 s06 s8-fp8 t06 t4b t4b-ray t8b fp8-8b memory
         invariant invariant-nocache)
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
