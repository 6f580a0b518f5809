"""Ranking metrics of a finished job against qrels: nDCG@10, MRR@10, Recall@100 and MAP, first stage vs reranked.

Why ir-measures: it is maintained (releases in 2025) and computes nDCG, Recall and AP through pytrec_eval, the
binding of the reference trec_eval, and RR@10 through the official MS MARCO script, so the numbers are the ones
papers report. ranx is faster, but it pulls numba and pays JIT compilation on start-up, and only the judged queries'
rows are evaluated (a few million at MS MARCO dev's 6,980 queries), which ir-measures does in seconds: its Python
work is ~0.4 ms a judged query (docs/perf-notes.md, entry 18).

The output is read a batch of parts at a time (results.BATCH_ROWS rows; a query is whole in its part): memory
follows one batch, the qrels and the per-query values, not the output.

What is evaluated is the order of the output's `rank` column (batchrank broke score ties there by input order):
the evaluators get -rank as the score. Handing them raw scores would let each break ties its own way (trec_eval
by doc id descending, the MS MARCO script ascending), and tied scores are common with bf16 models. The TREC export
writes scores in the same order (ties.py), so trec_eval on the exported file gives these numbers; the table says
how many tied scores there are where the measures look, i.e. how much the input order decided.

The first stage is the candidates' order before reranking, taken from, in this order:
  1. a `first_stage_rank` (1 = best) or `first_stage_score` (higher = better) column kept in the output
     (output.keep_columns): the output then carries everything needed, wherever it is copied;
  2. the same column in the job's input (the spec in run.json), only if the input files are unchanged since the
     run (path, size and mtime against job.json's fingerprint), joined on (query_id, doc_id);
  3. otherwise none: only the reranked metrics are reported, with the reason. The input's row order is not used:
     nothing declares it a ranking (a glob of files, a shuffled table), and a wrong baseline is worse than none.

Ids are compared as strings (qrels are text). Only queries that are both in the output and in the qrels are
averaged; output queries without judgments and qrels queries not in the output are counted and reported with
examples, and ids that meet too little to measure a ranking are refused (id_match.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import ir_measures
import polars as pl
from ir_measures import AP, RR, R, nDCG
from pydantic import ValidationError

from batchrank.errors import BatchrankError
from batchrank.id_match import IdMatch, IdMatcher
from batchrank.io import parquet_files
from batchrank.io.input import open_input
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import write_text_or_fail
from batchrank.qrels import Qrels
from batchrank.results import FinishedOutput, open_finished
from batchrank.spec import InputSpec
from batchrank.storage import StoragePath
from batchrank.ties import TieCount, count_ties

# Report names (what the MS MARCO and TREC literature calls them) and the ir-measures measure behind each.
MEASURES = {"nDCG@10": nDCG @ 10, "MRR@10": RR @ 10, "Recall@100": R @ 100, "MAP": AP}
FIRST_STAGE_COLUMNS = ("first_stage_rank", "first_stage_score")


@dataclass(frozen=True)
class Evaluation:
    qrels_path: str
    reranked: dict[str, float]
    first_stage: dict[str, float] | None
    first_stage_source: str  # where the first-stage order came from, or why there is none
    ids: IdMatch  # how the output's ids met the qrels'
    ties: TieCount  # tied scores where the measures look
    per_query: pl.DataFrame  # query_id, stage ("reranked" | "first_stage"), metric, value

    @property
    def queries_in_output(self) -> int:
        return self.ids.queries_in_output

    @property
    def queries_judged(self) -> int:
        return self.ids.queries_judged

    @property
    def qrels_queries_not_in_output(self) -> int:
        return self.ids.qrels_queries_not_in_output

    @property
    def queries_without_judgments(self) -> int:
        return self.ids.queries_without_judgments

    def warnings(self) -> list[str]:
        """Every id mismatch (with examples) and a missing first stage, one line each."""
        notes = self.ids.warnings()
        if self.first_stage is None:
            notes.append(f"no first-stage metrics: {self.first_stage_source}")
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            "reranked": self.reranked,
            "first_stage": self.first_stage,
            "queries_judged": self.queries_judged,
            "queries_in_output": self.queries_in_output,
            "queries_without_judgments": self.queries_without_judgments,
            "qrels_queries_not_in_output": self.qrels_queries_not_in_output,
            "first_stage_source": self.first_stage_source,
            "ids": self.ids.to_json(),
            "ties": self.ties.to_json(),
            "qrels": self.qrels_path,
            "measures": {name: str(measure) for name, measure in MEASURES.items()},
        }


def evaluate(output_dir: str | os.PathLike[str] | StoragePath, qrels: Qrels) -> Evaluation:
    """Metrics of the reranked order and, when a first-stage signal exists, of the first-stage order.

    The output is read a batch of parts at a time (results.BATCH_ROWS rows; a query is whole in its part), so
    memory follows one batch and the judged queries, never the whole output."""
    out = open_finished(output_dir)
    matcher = IdMatcher(qrels)
    judgments: dict[str, dict[str, int]] = {
        query_id: dict(zip(doc_ids, grades))
        for query_id, doc_ids, grades in qrels.frame.group_by("query_id").agg("doc_id", "relevance").iter_rows()
    }
    first_stage, source = _first_stage(out, matcher.qrels_ids)
    columns = ["query_id", "doc_id", "score", "rank", *([first_stage] if isinstance(first_stage, str) else [])]
    per_query: list[pl.DataFrame] = []
    ties = TieCount()
    for batch in out.part_batches():
        rows = matcher.add(scan_scores(batch, columns).collect())  # the rows of judged queries
        if not rows.height:
            continue
        batch_judgments = {query_id: judgments[query_id] for query_id in rows["query_id"].unique().to_list()}
        per_query.append(_per_query(rows.select("query_id", "doc_id", "rank"), batch_judgments, "reranked"))
        count_ties(rows.select("query_id", "doc_id", "score", "rank"), qrels.frame, ties)
        if first_stage is not None:
            per_query.append(_per_query(_first_stage_ranks(rows, first_stage), batch_judgments, "first_stage"))
    ids = matcher.finish()  # refuses ids that do not meet
    frame = pl.concat(per_query).sort("stage", "metric", "query_id")  # means that do not depend on the batches
    return Evaluation(
        qrels.path,
        _means(frame, "reranked"),
        _means(frame, "first_stage") if first_stage is not None else None,
        source,
        ids,
        ties,
        frame,
    )


def scan_scores(parts: list[StoragePath], columns: list[str]) -> pl.LazyFrame:
    """Columns of some parts, query_id and doc_id as strings (the one id type qrels know)."""
    ids = [column for column in ("query_id", "doc_id") if column in columns]
    return parquet_files.scan(parts).select(columns).with_columns(pl.col(ids).cast(pl.String))


def _means(per_query: pl.DataFrame, stage: str) -> dict[str, float]:
    rows = per_query.filter(pl.col("stage") == stage)
    return {name: float(rows.filter(pl.col("metric") == name)["value"].mean()) for name in MEASURES}


def _per_query(ranked: pl.DataFrame, judgments: dict[str, dict[str, int]], stage: str) -> pl.DataFrame:
    """One value per judged query and metric; a query a provider leaves out (no relevant doc) scores 0."""
    ranked = ranked.filter(pl.col("query_id").is_in(list(judgments)))
    names = {measure: name for name, measure in MEASURES.items()}
    # ir-measures hands back the measure objects it was given; a Measure hashes through its repr, which at one
    # lookup per query and metric was a fifth of the time over 50,000 judged queries.
    names_by_id = {id(measure): name for measure, name in names.items()}
    values = {(query_id, name): 0.0 for query_id in judgments for name in MEASURES}
    # A measure with cutoff k sees only the top k: handing it just those rows gives the same value, and spares
    # the MS MARCO script (MRR@10) sorting every candidate of every query in Python (most of the time at 7M rows).
    by_depth: dict[int | None, list[Any]] = {}
    for measure in MEASURES.values():
        by_depth.setdefault(measure.params.get("cutoff"), []).append(measure)
    for depth, measures in by_depth.items():
        rows = ranked if depth is None else ranked.filter(pl.col("rank") <= depth)
        run = {
            query_id: {doc_id: -float(rank) for doc_id, rank in zip(doc_ids, ranks)}
            for query_id, doc_ids, ranks in rows.group_by("query_id").agg("doc_id", "rank").iter_rows()
        }
        if not run:
            continue
        for metric in ir_measures.iter_calc(measures, judgments, run):
            if metric.query_id in judgments:
                name = names_by_id.get(id(metric.measure)) or names[metric.measure]
                values[(metric.query_id, name)] = float(metric.value)
    return pl.DataFrame(
        [(query_id, stage, name, value) for (query_id, name), value in values.items()],
        schema={"query_id": pl.String, "stage": pl.String, "metric": pl.String, "value": pl.Float64},
        orient="row",
    )


def _first_stage(out: FinishedOutput, queries: pl.Series) -> tuple[str | pl.DataFrame | None, str]:
    """Where the first-stage order comes from: an output column's name, or (query_id, doc_id, rank) of the judged
    `queries` from the job's input (those queries' input rows, held once); None, with the reason, without one."""
    columns = out.columns
    for column in FIRST_STAGE_COLUMNS:
        if column in columns:
            return column, f"output column {column}"
    return _first_stage_from_input(out, queries)


def _first_stage_ranks(rows: pl.DataFrame, first_stage: str | pl.DataFrame) -> pl.DataFrame:
    """(query_id, doc_id, rank) of the first-stage order over these output rows (whole queries)."""
    if isinstance(first_stage, str):
        return _as_rank(rows.lazy(), first_stage).collect()
    ranked = rows.select("query_id", "doc_id").join(first_stage, on=["query_id", "doc_id"], how="left")
    # Pairs the input lacks a value for go last, in output order.
    return ranked.with_columns(pl.col("rank").fill_null(2**31 - 1))


def _as_rank(frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """Ordinal ranks per query (ties and nulls in row order, nulls last), from a first-stage rank or score."""
    if column == "first_stage_rank":
        key = pl.col(column).cast(pl.Float64).fill_null(float("inf"))
    else:
        key = -pl.col(column).cast(pl.Float64).fill_null(float("-inf"))
    return frame.select("query_id", "doc_id", rank=key.rank("ordinal").over("query_id"))


def _first_stage_from_input(out: FinishedOutput, queries: pl.Series) -> tuple[pl.DataFrame | None, str]:
    keep_hint = "keep first_stage_rank or first_stage_score in output.keep_columns to compare with the first stage"
    try:
        spec = InputSpec.model_validate(out.run_info["spec"]["input"])
        files = open_input(spec)
    except (KeyError, TypeError, ValidationError, BatchrankError):
        return None, f"the output has no first-stage column and the job's input is not readable; {keep_hint}"
    now = [[f.size, f.footer_sha256] for f in files.files]
    if now != [entry[1:] for entry in out.manifest.fingerprint.get("input.files", [])]:
        return None, f"the output has no first-stage column and the job's input changed since the run; {keep_hint}"
    for column in FIRST_STAGE_COLUMNS:
        try:
            with_column = open_input(spec, [column])
        except BatchrankError:  # the input has no such column
            continue
        frame = with_column.scan().select(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String),
                                          pl.col(column))
        # Whole queries are kept or dropped, so each kept query's ranks are those over all its input rows.
        judged = frame.filter(pl.col("query_id").is_in(queries.implode()))
        return _as_rank(judged, column).collect(), f"input column {column} of {spec.path}"
    return None, f"neither the output nor the job's input has a first-stage column; {keep_hint}"


def format_table(evaluation: Evaluation) -> str:
    """metric | first stage | reranked | delta, then how many queries the averages cover."""
    lines = []
    if evaluation.first_stage is not None:
        lines.append(f"{'metric':<12}{'first stage':>13}{'reranked':>11}{'delta':>10}")
        for name in MEASURES:
            before, after = evaluation.first_stage[name], evaluation.reranked[name]
            lines.append(f"{name:<12}{before:>13.4f}{after:>11.4f}{after - before:>+10.4f}")
    else:
        lines.append(f"{'metric':<12}{'reranked':>11}")
        lines.extend(f"{name:<12}{evaluation.reranked[name]:>11.4f}" for name in MEASURES)
    lines.append(f"queries judged: {evaluation.queries_judged} of {evaluation.queries_in_output} in the output")
    lines.append(evaluation.ids.describe())
    lines.append(evaluation.ties.describe())
    if evaluation.first_stage is not None:
        lines.append(f"first stage: {evaluation.first_stage_source}")
    return "\n".join(lines)


def write_eval_json(evaluation: Evaluation, output_dir: str | os.PathLike[str] | StoragePath) -> StoragePath:
    path = OutputLayout(output_dir).eval_json
    write_text_or_fail(path, json.dumps(evaluation.to_json(), indent=1) + "\n")
    return path
