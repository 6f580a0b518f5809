"""Running the throughput bench's systems: each in its own measured process (processes.run_measured), one after
another, within its timeout and what is left of the bench's deadline; its last result line is what it measured."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from batchrank.bench.processes import run_measured
from batchrank.bench.system_common import RESULT_MARK


def run_system(system: str, config_path: Path, work: Path, timeout: float) -> dict[str, Any]:
    """One system's process, measured; its last result line, with how the process ended."""
    command = [sys.executable, "-m", "batchrank.bench.systems", system, str(config_path)]
    run = run_measured(command, work / "logs" / f"{system}.log", timeout)
    result: dict[str, Any] = {"datasets": {}}
    for line in run.log.read_text(errors="replace").splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
    result.update(system=system, returncode=run.returncode, process_wall_seconds=run.seconds, log=str(run.log),
                  gpu_memory_before_mib=run.gpu_memory_before_mib, peak_gpu_memory_mib=run.peak_gpu_mib,
                  peak_host_memory_mib=run.peak_host_mib, failed=run.returncode != 0)
    if result["failed"]:
        result["reason"] = f"timed out after {timeout:.0f} s" if run.timed_out else f"exit code {run.returncode}"
        result["stderr_tail"] = run.tail()
    return result


def root_cause(result: dict[str, Any]) -> str:
    """The lines of a failed system's whole log that say why (a spawned engine core logs its error above the
    traceback its parent prints, out of reach of the log's tail)."""
    log = Path(result.get("log", ""))
    if not log.is_file():
        return ""
    lines = log.read_text(errors="replace").splitlines()
    marks = ("Error", "error:", "Exception", "CUDA", "memory")
    found = [line for line in lines if any(mark in line for mark in marks) and "Traceback" not in line]
    return "root cause candidates:\n" + "\n".join(line[:300] for line in found[:25])


def print_progress(system: str, result: dict[str, Any]) -> None:
    """One line a dataset (and a call size) of what a system measured; a failure's log tail and likely cause."""
    for name, r in result["datasets"].items():
        if r.get("failed"):
            print(f"{system} {name}: FAILED ({r['reason']})", flush=True)
            continue
        print(f"{system} {name}: {r['pairs']:,} pairs in {r['seconds']:.2f} s = {r['pairs'] / r['seconds']:,.1f} "
              f"pairs/s; engine start {r.get('engine_start_seconds') or 0:.1f} s", flush=True)
        for size, call in r.get("calls", {}).items():
            print(f"{system} {name}, calls of {size}: {call['pairs'] / call['seconds']:,.1f} pairs/s", flush=True)
    if result["failed"]:
        print(f"{system}: FAILED ({result['reason']}); log tail:\n{result['stderr_tail']}", flush=True)
        print(root_cause(result), flush=True)


def run_systems(args: argparse.Namespace, config_path: Path, work: Path, started: float,
                save: Any) -> dict[str, dict[str, Any]]:
    """Each system in turn, within --system-timeout and what is left of --deadline."""
    results: dict[str, dict[str, Any]] = {}
    for system in args.system_list:
        timeout = args.system_timeout
        if args.deadline:
            left = args.deadline - (time.perf_counter() - started)
            if left < 30:
                results[system] = {"system": system, "failed": True, "datasets": {},
                                   "reason": f"not run: {left:.0f} s left of --deadline {args.deadline:.0f}"}
                print(f"{system}: {results[system]['reason']}", flush=True)
                continue
            timeout = min(timeout, left - 15)
        print(f"{system}: running (timeout {timeout:.0f} s, log {work / 'logs' / f'{system}.log'}) ...", flush=True)
        results[system] = run_system(system, config_path, work, timeout)
        print_progress(system, results[system])
        save(results)
    return results
