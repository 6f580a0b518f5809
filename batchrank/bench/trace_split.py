"""Where an engine's step time goes, read from a torch profiler trace (Chrome trace JSON, as vLLM's torch profiler
writes it): each engine step (vLLM's `execute_context_N(TOKENS)...` annotation) split into matrix products,
attention, the rest of the device's work, and the device's idle time within the step and before the next one.

On a GPU the device's work is its kernels (and memory copies), each assigned to the step whose GPU-side annotation
holds it, or else whose CPU annotation holds its launch; on a CPU (no kernels in the trace) it is the operators the
step ran. Overlapping work is counted once (interval unions), attention before matrix products (a FlashAttention
kernel's name carries CUTLASS template names)."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ATTENTION_MARKS = ("flash", "fmha", "attn", "attention", "reshape_and_cache", "kv_cache", "paged", "sdpa", "mha_")
MATMUL_MARKS = ("gemm", "nvjet", "cutlass", "xmma", "wgmma", "matmul", "cublas", "onednn_mm", "aten::mm",
                "aten::addmm", "aten::bmm", "aten::linear", "splitk", "_mm_")
DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
STEP_NAME = re.compile(r"execute_context_(\d+)\((\d+)\)_generation_(\d+)\((\d+)\)")
Interval = tuple[float, float]


def work_class(name: str) -> str:
    """'attention', 'matmul' or 'other' for a kernel or operator name."""
    lowered = name.lower()
    if any(mark in lowered for mark in ATTENTION_MARKS):
        return "attention"
    if any(mark in lowered for mark in MATMUL_MARKS):
        return "matmul"
    return "other"


def union(intervals: list[Interval]) -> list[Interval]:
    """The intervals merged: sorted, disjoint."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def length(intervals: list[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def subtract(intervals: list[Interval], cut: list[Interval]) -> list[Interval]:
    """Disjoint sorted `intervals` less disjoint sorted `cut`."""
    out: list[Interval] = []
    for start, end in intervals:
        pieces = [(start, end)]
        for cut_start, cut_end in cut:
            pieces = [p for s, e in pieces for p in ((s, min(e, cut_start)), (max(s, cut_end), e)) if p[1] > p[0]]
        out += pieces
    return out


@dataclass
class Step:
    """One engine step on the device timeline (microseconds)."""

    name: str
    tokens: int
    requests: int
    first: float  # its first device work's start
    last: float  # its last device work's end
    busy: float
    matmul: float
    attention: float

    @property
    def other(self) -> float:
        return max(0.0, self.busy - self.matmul - self.attention)


def load_trace(path: str | Path) -> list[dict[str, Any]]:
    """The trace's events (a .json or .json.gz file)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        trace = json.load(handle)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def _is_step(event: dict[str, Any], category: str) -> bool:
    return event.get("cat") == category and event.get("ph") == "X" and STEP_NAME.search(event.get("name", "")) is not None


def _assign(events: list[dict[str, Any]], windows: list[dict[str, Any]], at: dict[int, float] | None = None
            ) -> list[list[dict[str, Any]]]:
    """Each event into the window holding its time (`at`: an event's time by id, e.g. its launch), in order."""
    windows = sorted(windows, key=lambda w: w["ts"])
    starts = [w["ts"] for w in windows]
    found: list[list[dict[str, Any]]] = [[] for _ in windows]
    from bisect import bisect_right

    for event in events:
        time = at.get(id(event), event["ts"]) if at is not None else event["ts"]
        i = bisect_right(starts, time) - 1
        if i >= 0 and time <= windows[i]["ts"] + windows[i]["dur"]:
            found[i].append(event)
    return found


def _device_work(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], str]:
    """The step windows, the device work of each, and which device: 'gpu' (kernels) or 'cpu' (operators)."""
    kernels = [e for e in events if e.get("cat") in DEVICE_CATEGORIES and e.get("ph") == "X"]
    cpu_steps = [e for e in events if _is_step(e, "user_annotation")]
    if not kernels:
        operators = [e for e in events if e.get("cat") == "cpu_op" and e.get("ph") == "X"]
        return sorted(cpu_steps, key=lambda w: w["ts"]), _assign(operators, cpu_steps), "cpu"
    gpu_steps = [e for e in events if _is_step(e, "gpu_user_annotation")]
    if gpu_steps:
        return sorted(gpu_steps, key=lambda w: w["ts"]), _assign(kernels, gpu_steps), "gpu"
    # No GPU-side annotation: a kernel belongs to the step whose CPU annotation holds its launch (correlation id).
    launches = {e["args"]["correlation"]: e["ts"] for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    at = {id(k): launches[k["args"]["correlation"]] for k in kernels
          if k.get("args", {}).get("correlation") in launches}
    return sorted(cpu_steps, key=lambda w: w["ts"]), _assign(kernels, cpu_steps, at), "gpu"


def split_steps(events: list[dict[str, Any]]) -> tuple[list[Step], str, dict[str, float]]:
    """Every engine step of the trace that ran device work, in order; the device ('gpu' or 'cpu'); and the time
    (us) each kernel or operator name took over the steps (to check what work_class made of each name)."""
    windows, work, device = _device_work(events)
    steps = []
    by_name: dict[str, float] = {}
    for window, items in zip(windows, work):
        if not items:
            continue
        for event in items:
            by_name[event.get("name", "")] = by_name.get(event.get("name", ""), 0.0) + event["dur"]
        spans = [(e["ts"], e["ts"] + e["dur"]) for e in items]
        by_class: dict[str, list[Interval]] = {"attention": [], "matmul": [], "other": []}
        for event, span in zip(items, spans):
            by_class[work_class(event.get("name", ""))].append(span)
        attention = union(by_class["attention"])
        matmul = subtract(union(by_class["matmul"]), attention)
        match = STEP_NAME.search(window["name"])
        assert match is not None  # _is_step checked it
        busy = union(spans)
        steps.append(Step(window["name"], int(match.group(2)) + int(match.group(4)),
                          int(match.group(1)) + int(match.group(3)), busy[0][0], busy[-1][1], length(busy),
                          length(matmul), length(attention)))
    return steps, device, by_name


def top_work(by_name: dict[str, float], count: int = 12) -> list[dict[str, Any]]:
    """The names that took the most time, with their share of all and the class work_class gives them."""
    total = sum(by_name.values()) or 1.0
    ranked = sorted(by_name.items(), key=lambda item: -item[1])[:count]
    return [{"name": name, "class": work_class(name), "share": us / total} for name, us in ranked]


def summarize(steps: list[Step], full_share: float = 0.9) -> dict[str, Any]:
    """Mean times (ms) a full step (tokens >= full_share of the most any step had; the ramp at the start and the
    tail are not steady state), each step's period running to the next step's first work."""
    if len(steps) < 2:
        raise ValueError(f"the trace holds {len(steps)} engine step(s) with device work; at least 2 are needed")
    most = max(step.tokens for step in steps)
    rows = []
    for step, after in zip(steps, steps[1:]):
        if step.tokens >= full_share * most:
            period = after.first - step.first
            rows.append({"period": period, "busy": step.busy, "matmul": step.matmul, "attention": step.attention,
                         "other": step.other, "idle_within": (step.last - step.first) - step.busy,
                         "idle_between": after.first - step.last, "tokens": step.tokens, "requests": step.requests})
    if not rows:
        raise ValueError("no full engine step is followed by another in the trace")
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}
    return {"steps": len(steps), "full_steps": len(rows), "tokens_per_step": mean["tokens"],
            "requests_per_step": mean["requests"],
            **{f"{key}_ms": mean[key] / 1000 for key in ("period", "busy", "matmul", "attention", "other",
                                                          "idle_within", "idle_between")}}
