"""`batchrank teacher`: teacher labels for distillation from a finished run: each query's documents with the
teacher's scores (logits by default) and the texts, in the layout a trainer reads.

- listwise: query, documents, scores, one row per query (listwise KL, ListNet, LambdaLoss);
- pointwise: query, document, score, one row per document (pointwise MSE);
- flag-embedding: query, pos, neg, pos_scores, neg_scores (FlagEmbedding's distillation files): the query's
  judged positives among its candidates (qrels needed) and its best candidates that are not positives.
(For MarginMSE's query, positive, negatives and scores: `batchrank mine --format n-tuple --scores`.)
Streaming as `mine` is: a batch of whole queries at a time; texts from the output or joined from the input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import polars as pl

from batchrank.errors import InputDataError
from batchrank.planning.spill import scratch_directory
from batchrank.qrels import Qrels
from batchrank.results import open_finished
from batchrank.storage import StoragePath
from batchrank.training.files import TrainingFile, file_format
from batchrank.training.layouts import CHOSEN_SCHEMA, flag_embedding_rows, listwise_rows, pointwise_rows
from batchrank.training.mining import NEGATIVE, POSITIVE
from batchrank.training.ranked import Positives, ranked_queries
from batchrank.training.scores import TeacherScore, teacher_score
from batchrank.training.texts import TextSource

TeacherLayout = Literal["listwise", "pointwise", "flag-embedding"]
TEACHER_LAYOUTS: tuple[str, ...] = ("listwise", "pointwise", "flag-embedding")


@dataclass(frozen=True)
class TeacherReport:
    destination: str
    layout: str
    rows: int
    queries: int  # that got rows
    documents: int
    score: str

    def lines(self) -> list[str]:
        return [f"wrote {self.rows} rows ({self.layout}): {self.documents} documents of {self.queries} queries, "
                f"scores: {self.score}, to {self.destination}"]


def teacher_labels(output_dir: str | os.PathLike[str] | StoragePath, destination: str | os.PathLike[str],
                   layout: TeacherLayout = "listwise", top: int | None = None, qrels: Qrels | None = None,
                   score: TeacherScore = "logit", min_relevance: int = 1) -> TeacherReport:
    """Write OUTPUT_DIR's teacher labels into `destination` (.parquet or .jsonl).

    Args:
        top: each query's best `top` candidates (flag-embedding: its best `top` that are not positives); all when
            None.
        qrels: the positives (flag-embedding needs them).
        score: logit (the stored logit; an embedding model's similarity) or probability.
    """
    if layout not in TEACHER_LAYOUTS:
        raise InputDataError(f"--format {layout}: not one of {', '.join(TEACHER_LAYOUTS)}")
    if layout == "flag-embedding" and qrels is None:
        raise InputDataError("--format flag-embedding splits each query's documents into pos and neg: give --qrels")
    file_format(destination)
    out = open_finished(output_dir)
    value, score_name = teacher_score(out, score)
    positives = Positives.of(qrels, min_relevance) if qrels is not None else None
    texts = TextSource(out)
    queries = documents = 0
    with scratch_directory("batchrank-teacher-") as scratch, TrainingFile(destination) as training_file:
        chosen = (_chosen(frame, layout, top).with_columns(score=value)
                  for frame in ranked_queries(out, positives, texts.columns))
        for frame in texts.joined(chosen, scratch):
            rows = _layout_rows(frame, layout)
            queries += frame["q"].n_unique() if layout != "flag-embedding" else rows.height
            documents += frame.height if layout != "flag-embedding" else int(
                rows["pos"].list.len().sum() + rows["neg"].list.len().sum())
            training_file.write(rows)
        if not training_file.rows:
            if layout == "flag-embedding":  # nothing is written: the file is not created
                raise InputDataError(f"no query of {out.root} has a positive of qrels {qrels.path if qrels else ''} "
                                     "and a candidate besides; check that the ids match")
            training_file.write(_layout_rows(pl.DataFrame(schema=CHOSEN_SCHEMA), layout))
        rows_written = training_file.rows
    return TeacherReport(str(destination), layout, rows_written, queries, documents, score_name)


def _chosen(ranked: pl.DataFrame, layout: TeacherLayout, top: int | None) -> pl.DataFrame:
    """The rows a layout takes, with role (POSITIVE for the judged ones under flag-embedding) and slot. Rows are cut
    before they are sorted: a batch holds a million of them, a layout wants a few a query."""
    if layout == "flag-embedding":
        positives = ranked.filter(pl.col("is_positive")).group_by("q").agg(positives=pl.len())
        ranked = ranked.join(positives, on="q")  # queries without a positive have no row
        if top is not None:  # a query's best `top` others lie within its best `top` + positives
            ranked = ranked.filter(pl.col("is_positive") | (pl.col("rank") <= top + pl.col("positives")))
        ranked = ranked.sort("q", "rank").with_columns(
            others=(~pl.col("is_positive")).cast(pl.Int64).cum_sum().over("q"))
        if top is not None:
            ranked = ranked.filter(pl.col("is_positive") | (pl.col("others") <= top))
        ranked = ranked.drop("others", "positives")
        role = pl.when(pl.col("is_positive")).then(POSITIVE).otherwise(NEGATIVE).cast(pl.Int8)
    else:
        ranked = (ranked.filter(pl.col("rank") <= top) if top is not None else ranked).sort("q", "rank")
        role = pl.lit(NEGATIVE, pl.Int8)
    ranked = ranked.with_columns(role=role)
    return ranked.with_columns(slot=pl.int_range(pl.len()).over("q", "role")).drop("is_positive", "judged")


def _layout_rows(frame: pl.DataFrame, layout: TeacherLayout) -> pl.DataFrame:
    if layout == "listwise":
        return listwise_rows(frame)
    if layout == "pointwise":
        return pointwise_rows(frame)
    return flag_embedding_rows(frame, with_scores=True)
