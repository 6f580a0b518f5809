"""Memory and CPU time sampled from outside the measured processes (vLLM's engine core and Ray's actors are
processes of their own): the whole GPU's memory by nvidia-smi, a process tree's resident set and CPU seconds."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from batchrank.bench.environment import has_gpu


def gpu_memory_used_mib() -> float | None:
    """nvidia-smi's memory.used of the first GPU; None without a GPU."""
    if not has_gpu():
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.split()
        return float(out[0]) if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _process_tree_sum(root_pid: int, measure: Callable[[Any], float]) -> float | None:
    """`measure` summed over a process and all its descendants (None when the process is gone)."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        try:
            total += measure(process)
        except psutil.Error:
            continue  # exited between listing and reading
    return total


def process_tree_rss_mib(root_pid: int) -> float | None:
    """The resident set of a process and all its descendants: what the OOM killer counts."""
    total = _process_tree_sum(root_pid, lambda process: process.memory_info().rss)
    return None if total is None else total / 2**20


def process_tree_cpu_seconds(root_pid: int) -> float | None:
    """User + system CPU seconds of a process and its descendants so far (on a shared machine, steadier than wall
    time)."""
    return _process_tree_sum(root_pid, lambda process: sum(process.cpu_times()[:2]))


class MemorySampler(threading.Thread):
    """Peak GPU memory (nvidia-smi, the whole GPU) and peak host memory of one process tree, every `interval` s."""

    def __init__(self, root_pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root_pid, self.interval, self.stopped = root_pid, interval, threading.Event()
        self.peak_gpu_mib: float | None = None
        self.peak_host_mib: float | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            used, host = gpu_memory_used_mib(), process_tree_rss_mib(self.root_pid)
            if used is not None:
                self.peak_gpu_mib = max(used, self.peak_gpu_mib or 0.0)
            if host is not None:
                self.peak_host_mib = max(host, self.peak_host_mib or 0.0)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def wait_for_gpu_memory(baseline: float | None, limit: float = 60.0) -> None:
    """Wait (up to `limit` s) until the GPU's memory is back near `baseline`: the next system starts on a free GPU."""
    deadline = time.time() + limit
    while baseline is not None and time.time() < deadline:
        used = gpu_memory_used_mib()
        if used is None or used <= baseline + 1024:
            return
        time.sleep(1)
