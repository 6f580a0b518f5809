"""Does plain vLLM finish pooling prompts that fill max_model_len? The root cause of issue 20's long-document hang.

Each case runs plain vLLM (`LLM(...).classify` on token ids: no batchrank code) on a random-weight Qwen3-Reranker in
its own process with its own engine, all cases at once on one GPU (each engine gets a fixed KV cache, so they can
share it). A case that has not finished `--timeout` seconds after its engine started is recorded as hung; a case
whose engine core runs in its process (`in_process`) then also records the scheduler's state: every request's
computed and prompt tokens, the step's token budget and whether chunked prefill is on.

    python scripts/long_prompt_probe.py --model DIR --out-md probe.md --out-json probe.json

What each case isolates (L = --max-model-len):
  batchrank-today      batchrank's engine settings before the fix (async scheduling, compiled, engine core in its
                       own process), 3 prompts of exactly L tokens: does plain vLLM hang as batchrank did?
  batchrank-fixed      the same with enable_chunked_prefill false (what batchrank now sets)
  full                 eager, in-process engine core, 3 prompts of L tokens: the scheduler's state when stuck
  full-minus-1         3 prompts of L-1 tokens: is it exactly "prompt length == max_model_len"?
  no-chunking          enable_chunked_prefill false, 3 prompts of L tokens
  budget-L-mixed       max_num_batched_tokens = L (>= every prompt), a 100-token prompt first, then 3 of L tokens
  short-2048-mixed     max_model_len 2048 (MS MARCO jobs): a 1,000-token prompt, then 8 prompts of 2,048
  short-2048-no-chunk  the same with enable_chunked_prefill false
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

GIB = 1 << 30
QWEN3_YES_NO = {"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"],
                "is_original_qwen3_reranker": True}


def cases(length: int) -> dict[str, dict[str, Any]]:
    """name -> engine overrides, prompt lengths, max_model_len, whether the engine core runs in the process."""
    full = [length] * 3
    eager = {"enforce_eager": True}
    return {
        "batchrank-today": {"engine": {"async_scheduling": True}, "lengths": full, "in_process": False},
        "batchrank-fixed": {"engine": {"async_scheduling": True, "enable_chunked_prefill": False}, "lengths": full,
                            "in_process": False},
        "full": {"engine": eager, "lengths": full, "in_process": True},
        "full-minus-1": {"engine": eager, "lengths": [length - 1] * 3, "in_process": True},
        "no-chunking": {"engine": {**eager, "enable_chunked_prefill": False}, "lengths": full, "in_process": True},
        "budget-L-mixed": {"engine": {**eager, "max_num_batched_tokens": length}, "lengths": [100] + full,
                           "in_process": True},
        "short-2048-mixed": {"engine": eager, "lengths": [1000] + [2048] * 8, "max_model_len": 2048,
                             "in_process": True},
        "short-2048-no-chunk": {"engine": {**eager, "enable_chunked_prefill": False}, "lengths": [1000] + [2048] * 8,
                                "max_model_len": 2048, "in_process": True},
    }


def scheduler_state(llm: Any) -> dict[str, Any]:
    """What the in-process engine core's scheduler holds (read from another thread: a snapshot for diagnosis)."""
    core = llm.llm_engine.engine_core.engine_core
    scheduler, config = core.scheduler, core.scheduler.scheduler_config
    return {
        "running": [{"request": r.request_id, "computed_tokens": r.num_computed_tokens,
                     "prompt_tokens": r.num_prompt_tokens} for r in list(scheduler.running)],
        "waiting": len(scheduler.waiting),
        "max_num_batched_tokens": config.max_num_batched_tokens,
        "enable_chunked_prefill": config.enable_chunked_prefill,
        "max_model_len": scheduler.max_model_len,
        "num_sampled_tokens_per_step": getattr(scheduler, "num_sampled_tokens_per_step", None),
    }


def run_case(args: argparse.Namespace, name: str, case: dict[str, Any]) -> None:
    """The child: one engine, one classify call, a verdict in OUT/NAME.json."""
    if case["in_process"]:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM
    from vllm.inputs import TokensPrompt

    max_model_len = case.get("max_model_len", case["max_model_len_default"])
    started = time.perf_counter()
    llm = LLM(model=args.model, runner="pooling", dtype=args.dtype, max_model_len=max_model_len,
              hf_overrides=QWEN3_YES_NO, kv_cache_memory_bytes=int(args.kv_gib * GIB), gpu_memory_utilization=0.05,
              **case["engine"])
    engine_seconds = time.perf_counter() - started
    vocab = json.loads((Path(args.model) / "config.json").read_text())["vocab_size"]
    low = min(1000, vocab // 4)  # ordinary words, away from the special tokens at the start
    prompts = [TokensPrompt(prompt_token_ids=[low + (7 * i + p) % (vocab // 2) for i in range(n)])
               for p, n in enumerate(case["lengths"])]
    result: dict[str, Any] = {"case": name, "engine": case["engine"], "lengths": case["lengths"],
                              "max_model_len": max_model_len, "engine_start_seconds": round(engine_seconds, 1)}
    done = threading.Event()

    def classify() -> None:
        begun = time.perf_counter()
        try:
            outputs = llm.classify(prompts, use_tqdm=False)
            result["scores"] = [float(o.outputs.probs[0]) for o in outputs]
        except Exception as error:  # noqa: BLE001 - recorded: a refused prompt is not a hang
            result["error"] = f"{type(error).__name__}: {error}"
        result["classify_seconds"] = round(time.perf_counter() - begun, 2)
        done.set()

    threading.Thread(target=classify, daemon=True).start()
    result["finished"] = done.wait(args.timeout) and "error" not in result
    if not result["finished"]:
        result["hung_after_seconds"] = args.timeout
        if case["in_process"]:
            result["scheduler"] = scheduler_state(llm)
    (Path(args.work) / f"{name}.json").write_text(json.dumps(result, indent=1))
    sys.stdout.flush()
    os._exit(0)  # a hung engine never returns from classify: leave without waiting for it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-model-len", type=int, default=32768)
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds after the engine start")
    parser.add_argument("--deadline", type=float, default=400.0, help="seconds for every case, engine starts included")
    parser.add_argument("--cases", default="", help="comma-separated names (default: all)")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--kv-gib", type=float, default=12.0, help="each engine's KV cache (they share the GPU)")
    parser.add_argument("--work", default="probe-work")
    parser.add_argument("--out-md", default="probe.md")
    parser.add_argument("--out-json", default="probe.json")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    all_cases = cases(args.max_model_len)
    for case in all_cases.values():
        case["max_model_len_default"] = args.max_model_len
    if args.child:
        run_case(args, args.child, all_cases[args.child])
        return
    work.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.cases.split(",") if n] or list(all_cases)
    children = {}
    for name in names:
        (work / f"{name}.json").unlink(missing_ok=True)
        log = open(work / f"{name}.log", "w")
        children[name] = subprocess.Popen(
            [sys.executable, __file__, "--model", args.model, "--max-model-len", str(args.max_model_len),
             "--timeout", str(args.timeout), "--work", str(work), "--dtype", args.dtype, "--kv-gib",
             str(args.kv_gib), "--child", name],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + args.deadline
    for child in children.values():
        try:
            child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:  # the case's whole process group: a hung engine core with it (started here, stopped here)
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    results = []
    for name in names:
        path = work / f"{name}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
        else:
            tail = (work / f"{name}.log").read_text(errors="replace").splitlines()[-8:]
            results.append({"case": name, "finished": None, "error": " | ".join(tail)[-600:]})
    Path(args.out_json).write_text(json.dumps(results, indent=1))
    Path(args.out_md).write_text(summary(results))
    print(summary(results))


def summary(results: list[dict[str, Any]]) -> str:
    lines = ["| case | max_model_len | prompt lengths | engine overrides | finished | engine start s | "
             "classify s | stuck requests (computed / prompt tokens) | budget | chunked prefill |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        state = r.get("scheduler") or {}
        stuck = ", ".join(f"{q['computed_tokens']}/{q['prompt_tokens']}" for q in state.get("running", []))
        if state.get("waiting"):
            stuck += f" (+{state['waiting']} waiting)"
        verdict = {True: "yes", False: f"no ({r.get('hung_after_seconds')} s)", None: "error"}[r.get("finished")]
        verdict = "error" if r.get("error") else verdict
        lengths = r.get("lengths") or []
        shown = ", ".join(f"{n}x{length}" for length, n in _runs(lengths))
        lines.append(f"| {r['case']} | {r.get('max_model_len', '')} | {shown} | {json.dumps(r.get('engine', {}))} | "
                     f"{verdict} | {r.get('engine_start_seconds', '')} | {r.get('classify_seconds', '')} | {stuck} | "
                     f"{state.get('max_num_batched_tokens', '')} | {state.get('enable_chunked_prefill', '')} |")
    errors = [f"- {r['case']}: {r['error']}" for r in results if r.get("error")]
    return "\n".join(lines + errors) + "\n"


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


if __name__ == "__main__":
    main()
