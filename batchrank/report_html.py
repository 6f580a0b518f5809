"""OUTPUT/report.html: one self-contained page a person can open anywhere (no network: the plots are base64 PNGs).

It shows the metrics table (when qrels were given), the per-query nDCG@10 change, the score distribution,
throughput over the run (pairs/s of each chunk, from the parts' stats as the ledger holds them) and the job's
settings (run.json). The scores are read a batch of parts at a time (score_histogram): memory follows the batch.
The PNGs are also written to OUTPUT/report/ for slides and issues.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend, PNGs through Agg
from matplotlib.ticker import MaxNLocator

from batchrank.eval import MEASURES, Evaluation, scan_scores
from batchrank.io.parts import ChunkStats
from batchrank.output.manifest import write_text_or_fail
from batchrank.qrels import Qrels
from batchrank.results import FinishedOutput, open_finished
from batchrank.storage import StoragePath

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: .25em .8em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #1a7f37; } .down { color: #c62828; } .note { color: #8a5a00; } .muted { color: #666; }
img { max-width: 100%; border: 1px solid #eee; } pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
"""
_PNG_NAMES = ("ndcg-delta.png", "scores.png", "throughput.png")


def write_report(output_dir: str | os.PathLike[str] | StoragePath, evaluation: Evaluation | None = None,
                 qrels: Qrels | None = None) -> StoragePath:
    """Write OUTPUT/report.html and OUTPUT/report/*.png; returns the HTML's path."""
    out = open_finished(output_dir)
    figures: list[tuple[str, str, bytes]] = []  # (file name, caption, PNG)
    if evaluation is not None and evaluation.first_stage is not None:
        figures.append(("ndcg-delta.png", "nDCG@10 change per judged query", _ndcg_delta_png(evaluation)))
    figures.append(("scores.png", "Score distribution", _scores_png(out, qrels)))
    figures.append(("throughput.png", "Throughput over the run", _throughput_png(out.chunk_stats(), out.run_info)))
    images = out.layout.report_images
    images.mkdir()
    for name in _PNG_NAMES:  # a PNG this report does not make would be stale
        (images / name).unlink(missing_ok=True)
    for name, _, png in figures:
        (images / name).write_bytes(png)
    write_text_or_fail(out.layout.report_html, _page(out, evaluation, figures))
    return out.layout.report_html


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No Software/date metadata: the same data gives the same bytes.
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def _ndcg_delta_png(evaluation: Evaluation) -> bytes:
    wide = (
        evaluation.per_query.filter(pl.col("metric") == "nDCG@10")
        .pivot(on="stage", index="query_id", values="value")
        .select(delta=pl.col("reranked") - pl.col("first_stage"))
    )
    delta = wide["delta"].to_numpy()
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    axes = figure.add_subplot()
    bins = np.linspace(-1.025, 1.025, 42)  # a bin centred on 0: unchanged queries stand out
    counts, edges, patches = axes.hist(delta, bins=bins, color="#888", edgecolor="white")
    for patch, left in zip(patches, edges[:-1]):
        centre = left + (edges[1] - edges[0]) / 2
        patch.set_facecolor("#2e7d32" if centre > 0.01 else "#c62828" if centre < -0.01 else "#888")
    axes.axvline(0, color="#333", linewidth=0.8)
    axes.set_xlabel("nDCG@10 reranked − nDCG@10 first stage")
    axes.set_ylabel("queries")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    better, worse = int((delta > 1e-9).sum()), int((delta < -1e-9).sum())
    axes.set_title(f"{better} queries better, {len(delta) - better - worse} unchanged, {worse} worse")
    return _png(figure)


@dataclass
class ScoreHistogram:
    """The score distribution as the plot needs it, gathered a batch of parts at a time."""

    edges: np.ndarray
    counts: np.ndarray  # every pair
    relevant: np.ndarray  # scores of the judged relevant pairs (bounded by the qrels)
    pairs: int
    low: float
    high: float
    median: float
    median_exact: bool


def score_histogram(out: FinishedOutput, qrels: Qrels | None) -> ScoreHistogram:
    """Bins as np.histogram_bin_edges makes them (sqrt(pairs) of them, 10 to 60, from min to max). An output of one
    batch (results.BATCH_ROWS) is held whole and its median is exact; a bigger one is read twice (min and max, then
    the counts), and its median is the centre of one of 2**16 bins between min and max."""
    batches = list(out.part_batches())
    relevant_pairs = None if qrels is None else qrels.frame.filter(pl.col("relevance") > 0).select("query_id", "doc_id")
    if len(batches) == 1:
        scores = scan_scores(batches[0], ["query_id", "doc_id", "score"]).collect()
        values = scores["score"].to_numpy()
        edges = np.histogram_bin_edges(values, bins=int(np.clip(np.sqrt(len(values)), 10, 60)))
        relevant = (np.empty(0) if relevant_pairs is None else
                    scores.join(relevant_pairs, on=["query_id", "doc_id"], how="semi")["score"].to_numpy())
        return ScoreHistogram(edges, np.histogram(values, edges)[0], relevant, len(values), float(values.min()),
                              float(values.max()), float(np.median(values)), True)
    extremes = [scan_scores(b, ["score"]).select(pl.len(), low=pl.min("score"), high=pl.max("score")).collect().row(0)
                for b in batches]
    pairs = sum(n for n, _, _ in extremes)
    low, high = min(lo for _, lo, _ in extremes), max(hi for _, _, hi in extremes)
    edges = np.histogram_bin_edges([low, high], bins=int(np.clip(np.sqrt(pairs), 10, 60)))
    fine = np.linspace(low, high, 2**16 + 1) if high > low else np.array([low, low + 1.0])
    fine_range = (float(fine[0]), float(fine[-1]))
    counts, fine_counts, relevant = np.zeros(len(edges) - 1, np.int64), np.zeros(len(fine) - 1, np.int64), []
    for batch in batches:
        scores = scan_scores(batch, ["query_id", "doc_id", "score"]).collect()
        values = scores["score"].to_numpy()
        counts += np.histogram(values, edges)[0]
        fine_counts += np.histogram(values, len(fine) - 1, fine_range)[0]  # equal bins: no search per value
        if relevant_pairs is not None:
            relevant.append(scores.join(relevant_pairs, on=["query_id", "doc_id"], how="semi")["score"].to_numpy())
    # The bins of the two middle values (0-based ranks (n-1)//2 and n//2), each taken at its centre.
    middles = np.searchsorted(np.cumsum(fine_counts), [(pairs - 1) // 2 + 1, pairs // 2 + 1])
    median = float(np.mean((fine[middles] + fine[middles + 1]) / 2))
    return ScoreHistogram(edges, counts, np.concatenate(relevant) if relevant else np.empty(0), pairs, low, high,
                          median, False)


def _scores_png(out: FinishedOutput, qrels: Qrels | None) -> bytes:
    summary = score_histogram(out, qrels)
    bins, width = summary.edges, np.diff(summary.edges)
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    axes = figure.add_subplot()
    if qrels is None:
        axes.stairs(summary.counts, bins, fill=True, color="#4c72b0")
        axes.set_ylabel("pairs")
    else:
        # Densities, so that a few relevant pairs among millions stay visible next to the rest.
        relevant = np.histogram(summary.relevant, bins)[0]
        others = summary.counts - relevant
        if others.sum():
            axes.stairs(others / (others.sum() * width), bins, fill=True, color="#bbb",
                        label=f"other pairs ({int(others.sum())})")
        if relevant.sum():
            axes.stairs(relevant / (relevant.sum() * width), bins, linewidth=2, color="#2e7d32",
                        label=f"judged relevant ({int(relevant.sum())})")
        axes.set_ylabel("density")
        axes.legend()
    axes.set_xlabel("score")
    median = f"median {summary.median:.4g}" if summary.median_exact else f"median ≈{summary.median:.4g}"
    axes.set_title(f"{median}, min {summary.low:.4g}, max {summary.high:.4g}")
    return _png(figure)


def scoring_figures(run_info: dict[str, Any]) -> tuple[float, float]:
    """(pairs/s, seconds of scoring) of the last run, as its summary printed them: run.json's one pairs/s figure
    (every engine up to the last part) and the seconds it divides by. (0, 0) when that run scored nothing."""
    rate = float(run_info.get("pairs_per_second_this_run") or 0.0)
    pairs = run_info.get("pairs_scored_this_run", run_info.get("pairs", 0))
    return (rate, pairs / rate) if rate > 0 else (0.0, 0.0)


def throughput_note(run_info: dict[str, Any]) -> str:
    """The job's throughput in words: the summary's figure."""
    rate, seconds = scoring_figures(run_info)
    if not rate:
        return "The last run scored no chunk (they were scored by earlier runs)."
    return (f"This run: {rate:.1f} pairs/s over {seconds:.3g} s of scoring (every engine up to the last part), "
            "the figure the run's summary printed; the dots are each chunk's own engine rate.")


def _throughput_png(stats: list[ChunkStats], run_info: dict[str, Any]) -> bytes:
    start = min(s.finished_at - s.seconds for s in stats)
    elapsed = np.array([s.finished_at - start for s in stats])
    unit, divisor = ("s", 1) if elapsed.max() < 120 else ("min", 60) if elapsed.max() < 7200 else ("h", 3600)
    rates = np.array([s.pairs / max(s.seconds, 1e-9) for s in stats])
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    axes = figure.add_subplot()
    many = len(stats) > 2000  # thousands of chunks: dots, no line between them
    axes.plot(elapsed / divisor, rates, "." if many else "o-", color="#4c72b0", markersize=1 if many else 4,
              linewidth=1)
    # The job's figure is the one the summary printed and run.json keeps (the README promises one), not a second
    # one made from the chunks' engine times, which leave out the time between chunks.
    rate, seconds = scoring_figures(run_info)
    engines = {s.worker for s in stats}
    this_run = run_info.get("chunks_scored_this_run", len(stats))
    scope = "this run" if this_run == len(stats) else f"this run ({this_run} of {len(stats)} chunks)"
    if rate:
        axes.axhline(rate, color="#c44e52", linestyle="--", linewidth=1,
                     label=f"{scope}{f' on {len(engines)} engines' if len(engines) > 1 else ''}: {rate:.1f} pairs/s")
        axes.legend()
    axes.set_xlabel(f"{unit} since the first chunk started (a gap in time means the job was stopped and resumed)")
    axes.set_ylabel("pairs/s of the chunk's engine")
    axes.set_ylim(bottom=0)
    pairs = sum(s.pairs for s in stats)
    scored = f", {seconds:.3g} s of scoring {scope}" if rate else ", scored by earlier runs"
    axes.set_title(f"{len(stats)} chunks, {pairs} pairs{scored}")
    return _png(figure)


def _page(out: FinishedOutput, evaluation: Evaluation | None, figures: list[tuple[str, str, bytes]]) -> str:
    info = out.run_info
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>batchrank report: {e(out.root.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>batchrank report: {e(str(out.root))}</h1>",
        f"<p class='muted'>model {e(str(info.get('model', {}).get('path', '?')))} · {info.get('pairs', '?')} pairs · "
        f"finished {e(str(info.get('finished_at', '?')))} · report written {e(time.strftime('%Y-%m-%d %H:%M'))}</p>",
        "<h2>Metrics</h2>",
        _metrics_html(evaluation),
    ]
    for name, caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{e(caption)}</h2><img alt='{e(caption)}' src='data:image/png;base64,{data}'>")
        if name == "throughput.png":
            parts.append(f"<p>{e(throughput_note(info))}</p>")
        parts.append(f"<p class='muted'>also in report/{e(name)}</p>")
    parts += ["<h2>Settings</h2>", _settings_html(info), "</body></html>"]
    return "\n".join(parts)


def _metrics_html(evaluation: Evaluation | None) -> str:
    e = html.escape
    if evaluation is None:
        return ("<p class='muted'>No qrels given: set <code>eval.qrels</code> in the job spec, or run "
                "<code>batchrank report OUTPUT --qrels QRELS</code>.</p>")
    first = evaluation.first_stage
    rows = ["<table><tr><th>metric</th>" + ("<th>first stage</th>" if first else "") + "<th>reranked</th>"
            + ("<th>delta</th>" if first else "") + "</tr>"]
    for name in MEASURES:
        after = evaluation.reranked[name]
        cells = f"<td>{e(name)}</td>"
        if first:
            delta = after - first[name]
            css = "up" if delta > 0 else "down" if delta < 0 else ""
            cells += f"<td class='num'>{first[name]:.4f}</td><td class='num'>{after:.4f}</td>"
            cells += f"<td class='num {css}'>{delta:+.4f}</td>"
        else:
            cells += f"<td class='num'>{after:.4f}</td>"
        rows.append(f"<tr>{cells}</tr>")
    rows.append("</table>")
    rows.append(f"<p>{evaluation.queries_judged} of {evaluation.queries_in_output} queries judged "
                f"(qrels {e(evaluation.qrels_path)}); first stage: {e(evaluation.first_stage_source)}.</p>")
    rows.append(f"<p>{e(evaluation.ids.describe())}; {e(evaluation.ties.describe())}.</p>")
    rows += [f"<p class='note'>{e(note)}</p>" for note in evaluation.warnings()]
    return "\n".join(rows)


def _settings_html(info: dict[str, Any]) -> str:
    spec, model = info.get("spec", {}), info.get("model", {})
    items = {
        "input": spec.get("input", {}).get("path"),
        "model": model.get("path"),
        "model kind": model.get("kind"),
        "score": model.get("input_format", {}).get("score"),
        "prompt template": model.get("template"),
        "input format": json.dumps(model.get("input_format", {})),
        "dtype": spec.get("model", {}).get("dtype"),
        "max_model_len": model.get("max_model_len"),
        "chunk_size": spec.get("run", {}).get("chunk_size"),
        "chunks (scored this run)": f"{info.get('chunks')} ({info.get('chunks_scored_this_run')})",
        "pairs": info.get("pairs"),
        "prompt tokens": info.get("prompt_tokens"),
        "truncated pairs": info.get("truncated_pairs"),
        "pairs/s this run": info.get("pairs_per_second_this_run"),
        "seconds of scoring this run (every engine up to the last part)": round(scoring_figures(info)[1], 3),
        "wall seconds this run (every engine up to run.json)": info.get("wall_seconds_this_run"),
        "versions": ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items()),
    }
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items.items())
    full = html.escape(json.dumps(info, indent=1))
    return f"<table>{rows}</table><details><summary>run.json</summary><pre>{full}</pre></details>"
