"""The throughput bench's report: each system's figures on each dataset against the compute floors and against
plain vLLM at its best call size (with its one-call figure beside it), score agreement, and the Markdown section."""

from __future__ import annotations

import json
from typing import Any

from batchrank.bench import formats
from batchrank.bench.agreement import ranking_drift, score_agreement

AGREEMENT_LIMIT = 0.05  # bf16: batchrank and plain vLLM differ by ~1e-2 at most; above this the run fails
COMPARISONS = (("batchrank", "vllm"), ("hf", "vllm"), ("fp8", "batchrank"))
PLAIN = "vllm"
HEADER = ("| candidates x queries | system | pairs | pairs/s | vs plain vLLM's best | vs its one call | prompt tokens/s "
          "| % of floor | % of computed floor | prefix hits a pair | peak GPU memory | peak host memory | engine start |")


def expand_calls(system: str, entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A system's rows on one dataset: plain vLLM's one call as `vllm` and each call size as `vllm@SIZE`."""
    rows = {system: {k: v for k, v in entry.items() if k != "calls"}}
    for size, call in entry.get("calls", {}).items():
        rows[f"{system}@{size}"] = {**call, "engine_start_seconds": entry.get("engine_start_seconds")}
    return rows


def is_plain(key: str) -> bool:
    """Whether a row key is one of plain vLLM's (this run's or a reference's, any call size)."""
    return key.removeprefix("reference:").split("@")[0] == PLAIN


def _rates(row: dict[str, Any], floor: dict[str, Any], computed_pairs_floor: float | None) -> None:
    row["pairs_per_second"] = row["pairs"] / row["seconds"]
    row["prompt_tokens_per_second"] = row["prompt_tokens"] / row["seconds"]
    row["percent_of_floor"] = 100 * row["prompt_tokens_per_second"] / floor["tokens_per_second"]
    if computed_pairs_floor:
        row["percent_of_computed_floor"] = 100 * row["pairs_per_second"] / computed_pairs_floor
    if row.get("prefix_cache_hit_tokens") is not None:
        row["prefix_cache_hits_per_pair"] = row["prefix_cache_hit_tokens"] / row["pairs"]


def dataset_rows(name: str, stats: dict[str, Any], floor: dict[str, Any], results: dict[str, dict[str, Any]],
                 expected: dict[str, list[str]], reference_rows: dict[str, dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """Each system's figures on one dataset, with the floors and the ratios to plain vLLM's fastest call size and to
    its one call. `expected`: the datasets each system was to score (a system with no result here is a failed row);
    `reference_rows`: plain vLLM's rows from an earlier run (--vllm-reference), used when this run has none."""
    rows: dict[str, dict[str, Any]] = {}
    for system, result in results.items():
        if name not in expected.get(system, []):
            continue
        entry = result.get("datasets", {}).get(name)
        if entry is None:
            rows[system] = {"failed": True, "reason": result.get("reason", "not run")}
        else:
            rows.update(expand_calls(system, dict(entry)))
    ok = {s: r for s, r in rows.items() if not r.get("failed")}
    out: dict[str, Any] = {"pairs_floor": floor["tokens_per_second"] / stats["mean_prompt_tokens"]}
    if reference_rows and PLAIN not in ok:
        rows.update({f"reference:{key}": dict(row) for key, row in reference_rows.items()})
        ok.update({f"reference:{key}": rows[f"reference:{key}"] for key in reference_rows})
        out["plain_vllm_from"] = next(iter(reference_rows.values()))["from"]
    # The prefix cache serves each query's shared prefix: the GPU computes the prompt tokens less the hits, which
    # plain vLLM (else batchrank) reports for the same token ids.
    with_hits = [s for s in (PLAIN, "batchrank", "fp8") if ok.get(s, {}).get("prefix_cache_hit_tokens") is not None]
    if with_hits:
        source = ok[with_hits[0]]
        computed = (source["prompt_tokens"] - source["prefix_cache_hit_tokens"]) / source["pairs"]
        out.update(computed_tokens_per_pair=computed, computed_floor_source=with_hits[0],
                   computed_pairs_floor=floor["tokens_per_second"] / computed)
    for row in ok.values():
        _rates(row, floor, out.get("computed_pairs_floor"))
    plain = {key: row for key, row in ok.items() if is_plain(key)}
    if plain:
        best = max(plain, key=lambda key: plain[key]["pairs_per_second"])
        one_call = next((key for key in plain if "@" not in key), None)
        out.update(plain_vllm_best=best, plain_vllm_best_rate=plain[best]["pairs_per_second"],
                   plain_vllm_one_call_rate=plain[one_call]["pairs_per_second"] if one_call else None)
    for row in ok.values():
        row["ratio_vs_vllm"] = row["pairs_per_second"] / out["plain_vllm_best_rate"] if plain else None
        one = out.get("plain_vllm_one_call_rate")
        row["ratio_vs_vllm_one_call"] = row["pairs_per_second"] / one if one else None
    out["systems"] = rows
    out["comparisons"] = compare(ok)
    return out


def compare(ok: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Score agreement of batchrank and transformers with plain vLLM's one call (this run's, else the reference's
    when it scored the same model: over the pairs both scored), and FP8's drift from batchrank."""
    import polars as pl

    found = {}
    ok = dict(ok)
    if PLAIN not in ok and "scores_path" in ok.get(f"reference:{PLAIN}", {}):
        ok[PLAIN] = ok[f"reference:{PLAIN}"]
    for a, b in COMPARISONS:
        if a in ok and b in ok:
            left, right = pl.read_parquet(ok[a]["scores_path"]), pl.read_parquet(ok[b]["scores_path"])
            found[f"{a} vs {b}"] = ranking_drift(right, left) if a == "fp8" else score_agreement(left, right)
    return found


def labels(hf_batch: int, results: dict[str, dict[str, Any]], runs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A readable name for every row key of the report."""
    def batchrank(system: str) -> str:
        first = next((r for r in results.get(system, {}).get("datasets", {}).values() if not r.get("failed")), None)
        name = "batchrank FP8" if system == "fp8" else "batchrank"
        if first is None:
            return name
        executor = first["executor"]
        if executor == "ray":
            executor += f", {first['workers']} engine(s), {first['engines_per_gpu']} per GPU"
        return f"{name} (run_job, {executor}, chunk_size {first['chunk_size']})"

    names = {"batchrank": batchrank("batchrank"), "fp8": batchrank("fp8"),
             "hf": f"plain transformers (SDPA, batch {hf_batch})"}
    for run in runs.values():
        for key, row in run["systems"].items():
            if is_plain(key):
                size = key.split("@")[1] if "@" in key else None
                text = f"plain vLLM (llm.classify calls of {int(size):,})" if size else "plain vLLM (one llm.classify)"
                names[key] = text + (f" from {row['from']}" if key.startswith("reference:") else "")
    return names


def problems_of(results: dict[str, dict[str, Any]], runs: dict[str, dict[str, Any]]) -> list[str]:
    """Every failed system or dataset, and every dataset where batchrank and plain vLLM disagree."""
    problems = [f"{s}: {r['reason']}" for s, r in results.items() if r.get("failed")]
    for name, data in runs.items():
        problems += [f"{s} on {name}: {r['reason']}" for s, r in data["systems"].items()
                     if r.get("failed") and not results.get(s, {}).get("failed")]
        agreement = data["comparisons"].get("batchrank vs vllm")
        if agreement is not None and not agreement["max_abs_diff"] <= AGREEMENT_LIMIT:
            problems.append(f"{name}: batchrank and plain vLLM scores differ by {agreement['max_abs_diff']:.3g} "
                            f"(limit {AGREEMENT_LIMIT})")
    return problems


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def render_rows(name: str, data: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """The table's rows of one dataset, one a system (plain vLLM: one a call size)."""
    lines = []
    for key, r in data["systems"].items():
        label = report["labels"].get(key, key)
        if r.get("failed"):
            lines.append(f"| {name} | {label} | FAILED: {r['reason']} |" + " |" * 10)
            continue
        process = report["systems"].get(key.split("@")[0], {})
        hits = r.get("prefix_cache_hits_per_pair")
        start = r.get("engine_start_seconds") or process.get("engine_start_seconds")
        lines.append(
            f"| {name} | {label} | {r['pairs']:,} | {formats.fmt_rate(r['pairs_per_second'])} | "
            f"{_ratio(r['ratio_vs_vllm'])} | {_ratio(r['ratio_vs_vllm_one_call'])} | "
            f"{formats.fmt_int(r['prompt_tokens_per_second'])} | {formats.fmt_percent(r['percent_of_floor'])} | "
            f"{formats.fmt_percent(r.get('percent_of_computed_floor'))} | {'n/a' if hits is None else f'{hits:.1f}'} | "
            f"{formats.fmt_gib(process.get('peak_gpu_memory_mib'))} | "
            f"{formats.fmt_gib(process.get('peak_host_memory_mib'))} | {'n/a' if start is None else f'{start:.1f} s'} |")
    return lines


def render_comparisons(name: str, data: dict[str, Any], labels_: dict[str, str]) -> list[str]:
    """One line a comparison: the plain vLLM anchor used, score agreement, FP8's drift."""
    notes = {"batchrank vs vllm": f"the same token ids; bf16 differs by ~1e-2 at most as batches and prefix-cache "
             f"reuse differ, float32 by ~1e-6; above {AGREEMENT_LIMIT} the run fails",
             "hf vs vllm": "padded batches in another kernel stack; reported, not checked",
             "fp8 vs batchrank": "FP8 against bf16 on the same pairs (random weights: this is arithmetic drift, not "
             "ranking quality)"}
    lines = []
    if "plain_vllm_best" in data:
        one = data["plain_vllm_one_call_rate"]
        lines.append(f"- {name}, plain vLLM at its best: {labels_[data['plain_vllm_best']]}, "
                     f"{formats.fmt_rate(data['plain_vllm_best_rate'])} pairs/s; its one call: "
                     f"{formats.fmt_rate(one)} pairs/s (ratios are against the best, and against the one call)")
    for key, c in data["comparisons"].items():
        text = (f"- {name}, scores {key}: max |diff| {c['max_abs_diff']:.2e}, mean {c['mean_abs_diff']:.2e} over "
                f"{c['pairs_compared']:,} pairs")
        if "top_k_changed_share" in c:
            text += (f"; top-{c['k']} set changed for {100 * c['top_k_changed_share']:.1f}% of {c['queries']:,} "
                     f"queries; Kendall's tau a query: mean {c['mean_kendall_tau']:.4f}, "
                     f"min {c['min_kendall_tau']:.4f}")
        lines.append(text + f" ({notes[key]})")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report's Markdown section: heading, command, settings, floors, the table and the comparisons."""
    floor, settings = report["floor"], report["settings"]
    first = next(iter(report["datasets"].values()))
    sizes = ", ".join(f"{d['pairs']:,} pairs ({d['queries']:,} queries x {d['docs_per_query']})"
                      for d in report["datasets"].values())
    calls = ", ".join(f"{size:,}" for size in settings["vllm_calls"]) or "none"
    lines = [f"## {report['model_label']}{': ' + report['title'] if report['title'] else ''}: {sizes}, "
             f"{report['gpu']} ({report['date']})", "", "```", report["command"], "```", "",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
             f"- data: synthetic MS MARCO-shaped pairs grouped by query (seed {first['seed']}): queries 3-10 words, "
             f"passages log-normal around {first['doc_words'][0]} words in [8, {first['doc_words'][1]}], the model "
             f"card's Qwen3-Reranker prompt; " + "; ".join(
                 f"{n}: {d['mean_prompt_tokens']:.1f} prompt tokens a pair, {d['shortened_documents']} passages "
                 f"shortened to fit" for n, d in report["datasets"].items()),
             f"- dtype {settings['dtype']}, max_model_len {settings['max_model_len']}; batchrank model.engine "
             f"{json.dumps(settings['engine'])}, run {json.dumps(settings['run'])}; fp8 adds "
             f"{json.dumps(settings['fp8_engine'])} with dtype {settings['fp8_dtype']}; plain vLLM: its defaults, "
             f"one llm.classify a dataset, then calls of {calls} prompts (prefix cache emptied before each pass)",
             f"- timed: after the engine start and a warm-up on {settings['warmup_pairs']} other pairs; batchrank: "
             "run.json's clock (engine(s) up -> last part written; on Ray each dataset's run_job starts fresh actors, "
             "no warm-up); plain vLLM: its llm.classify calls; transformers: tokenize, sort by length, padded batches",
             f"- floor: 2 x N x tokens / {floor['peak_tflops']:g} TFLOP/s, {floor['formula']}, = "
             f"{floor['gflop_per_token']:.3f} GFLOP a token -> {formats.fmt_int(floor['tokens_per_second'])} "
             "tokens/s; computed floor: over prompt tokens less prefix-cache hits (" + "; ".join(
                 f"{n}: {d['computed_tokens_per_pair']:.1f} computed a pair, from {d['computed_floor_source']}, "
                 f"{formats.fmt_rate(d['computed_pairs_floor'])} pairs/s" for n, d in report["runs"].items()
                 if "computed_tokens_per_pair" in d) + ")",
             "- memory: nvidia-smi's memory.used (vLLM reserves gpu_memory_utilization of the card) and the resident "
             "set of the system's process tree, sampled every 0.2 s", "", HEADER, "| --- " * 13 + "|"]
    for name, data in report["runs"].items():
        lines += render_rows(name, data, report)
    lines.append("")
    for name, data in report["runs"].items():
        lines += render_comparisons(name, data, report["labels"])
    for system, r in report["systems"].items():
        if r.get("failed") and r.get("stderr_tail"):
            lines += ["", f"{report['labels'].get(system, system)} failed ({r['reason']}); log tail:", "", "```",
                      r["stderr_tail"], "```"]
    lines += ["", f"Total wall time {report['total_wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)
