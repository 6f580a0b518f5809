"""What the CLI prints to stdout: run summaries, metrics, previews of the ranked output, input reports, status."""

from __future__ import annotations

import json

import click
import polars as pl

from batchrank.io import parquet_files
from batchrank.io.trec_ids import printable, shown_id
from batchrank.job import JobResult
from batchrank.output.status import JobStatus, describe_since
from batchrank.planning.validate import InputReport
from batchrank.results import open_finished
from batchrank.scoring.base import ModelFacts
from batchrank.storage import StoragePath


def print_run_summary(result: JobResult) -> None:
    info = result.run_info
    if result.already_complete:
        click.echo(f"nothing to do: {result.output} is already complete ({result.total_pairs} pairs scored)")
    else:
        click.echo(
            f"scored {result.total_pairs} pairs in {result.total_chunks} chunks "
            f"({result.chunks_scored} this run, {info['pairs_per_second_this_run']:.1f} pairs/s, "
            f"{info['truncated_pairs']} truncated)"
        )
        if "rejects" in info:
            reasons = ", ".join(f"{n} {reason}" for reason, n in info.get("rejected_by_reason", {}).items())
            click.echo(f"skipped {info['rejected_pairs']} bad rows{f' ({reasons})' if reasons else ''}: "
                       f"{info['rejects']}")
        click.echo(f"scores: {result.output}/scores  run info: {result.output}/run.json")
    if result.evaluation is not None:
        from batchrank.eval import format_table  # ir-measures: only where metrics were asked for

        click.echo("\n" + format_table(result.evaluation))
        for note in result.evaluation.warnings():
            click.echo(f"warning: {note}", err=True)
    if result.report is not None:
        click.echo(f"report: {result.report}")


def print_preview(output: str | StoragePath, queries: int, top: int = 3) -> None:
    """The best rows of the first few queries. A chunk holds whole queries, so reading the first parts is enough:
    the rest of a millions-of-rows output is never loaded for this."""
    frames, seen = [], 0
    for part in open_finished(output).parts:
        frame = parquet_files.read_frame(part)
        frames.append(frame)
        seen += frame["query_id"].n_unique()
        if seen >= queries:
            break
    scores = pl.concat(frames)
    for query_id in scores["query_id"].unique(maintain_order=True).head(queries):
        rows = scores.filter(pl.col("query_id") == query_id).sort("rank").head(top)
        # The texts show only where output.keep_columns kept them; the ids alone otherwise.
        # Ids and texts escaped: a tab or newline in them would break the preview's lines and columns.
        title = f": {printable(str(rows['query'][0]))}" if "query" in rows.columns else ""
        click.echo(f"\n{shown_id(query_id)}{title}")
        for row in rows.iter_rows(named=True):
            text = f"  {_shorten(printable(str(row['document'])), 90)}" if "document" in row else ""
            click.echo(f"  {row['rank']:>3}  {row['score']:.4f}  {shown_id(row['doc_id'])}{text}")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_input_report(report: InputReport) -> None:
    click.echo(f"files: {report.files}  rows: {report.rows}  queries: {report.queries}")
    click.echo(f"query length (chars): {report.query_chars}")
    click.echo(f"document length (chars): {report.doc_chars}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


def print_model_facts(model: ModelFacts) -> None:
    """What the model is fed, so that a user can check the input format against the model card."""
    click.echo(f"model: {model.kind}, max_model_len {model.max_model_len or 'the engine default'}")
    for key, value in model.input_format.items():
        if key != "kind":
            click.echo(f"  {key}: {value!r}" if isinstance(value, str) and "\n" in value else f"  {key}: {value}")


def print_status(status: JobStatus, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(status.to_json()))
        return
    state = status.state
    if status.run:
        state += f" (host {status.run['host']}, pid {status.run['pid']}{describe_since(status.run.get('started'))})"
    elif status.last_error:
        state += f": {status.last_error.get('message')} (exit {status.last_error.get('exit_code')}, " \
                 f"{status.last_error.get('at')}); fix the cause if any, then rerun to resume"
    elif status.state == "stopped":
        state += " (no run holds it and none recorded an error: killed, or its machine was lost); rerun to resume"
    click.echo(f"{status.output}: {state}")
    # Rows of a finished chunk that were rejected while scoring (input.on_bad_rows: skip) are done, not scored.
    line = f"chunks: {status.chunks_done}/{status.chunks}  rows scored: {status.rows_scored}/{status.rows_planned}"
    if status.rejected_before_scoring:
        line += f"  rejected before scoring: {status.rejected_before_scoring}"
    if status.rejected_while_scoring:
        line += f"  rejected while scoring: {status.rejected_while_scoring}"
    click.echo(line)
