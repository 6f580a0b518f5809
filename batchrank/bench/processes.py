"""A measured subprocess: run in a session of its own with a timeout, its memory sampled from outside, and its
whole process group (vLLM's engine core, Ray's raylet and actors) stopped at its end. Processes are stopped by
process group or by the engine-core name on the GPU machine (which the benchmark has to itself), never by a name
on a shared machine."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchrank.bench.environment import REPO, child_environment, has_gpu
from batchrank.bench.memory import MemorySampler, gpu_memory_used_mib, wait_for_gpu_memory


@dataclass
class ProcessRun:
    """What run_measured saw of one process: its exit, wall time, peak memory and its log."""

    returncode: int | None  # None: killed at its timeout
    seconds: float
    peak_gpu_mib: float | None
    peak_host_mib: float | None
    gpu_memory_before_mib: float | None
    log: Path

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def tail(self, lines: int = 25) -> str:
        """The last lines of its log."""
        return "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])


def stop_leftover_engines() -> None:
    """On the GPU machine (ours alone): kill any vLLM engine-core process a finished system left behind (one that
    left its process group), so that the next system's engine finds the GPU free. Seen: a 4B engine refused to start
    after the plain vLLM system before it ("Engine core initialization failed"). Never on a shared CPU machine."""
    if not has_gpu():
        return
    import psutil

    for leftover in psutil.process_iter(["cmdline", "name"]):
        text = " ".join(leftover.info["cmdline"] or []) + " " + (leftover.info["name"] or "")
        if "VLLM::EngineCore" in text or "EngineCore_DP" in text:
            print(f"stopping a leftover engine core, pid {leftover.pid}", flush=True)
            try:
                leftover.kill()
            except psutil.Error:
                pass
    apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
                          capture_output=True, text=True).stdout.strip()
    if apps:
        print(f"GPU processes after the system: {apps}", flush=True)


def run_measured(command: list[str], log: Path, timeout: float | None, cwd: Path = REPO,
                 on_tick: Callable[[float, int], None] | None = None) -> ProcessRun:
    """Run `command` in a session of its own, stdout and stderr to `log`, sampling its memory; at the end (or at
    its timeout) kill its whole process group, so whatever it left behind (vLLM's engine core, Ray's raylet and
    actors) goes with it, then wait for the GPU's memory to come back. `on_tick(seconds so far, its pid)` is called
    every 0.2 s while it runs (to watch its output, or to kill one of its workers)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    baseline = gpu_memory_used_mib()
    started = time.perf_counter()
    deadline = math.inf if timeout is None else started + timeout
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=child_environment(),
                                   start_new_session=True)
        sampler = MemorySampler(process.pid)
        sampler.start()
        returncode: int | None = None
        while returncode is None and time.perf_counter() < deadline:
            try:
                returncode = process.wait(timeout=min(0.2, max(deadline - time.perf_counter(), 0.01)))
            except subprocess.TimeoutExpired:
                if on_tick is not None:
                    on_tick(time.perf_counter() - started, process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    sampler.stop()
    stop_leftover_engines()
    wait_for_gpu_memory(baseline)
    return ProcessRun(returncode, time.perf_counter() - started, sampler.peak_gpu_mib, sampler.peak_host_mib,
                      baseline, log)
