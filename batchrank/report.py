"""What the CLI prints: run summaries, previews of the ranked output, input reports, status."""

from __future__ import annotations

import click
import polars as pl

from batchrank import storage
from batchrank.checkpoint import OutputDir
from batchrank.errors import CheckpointError
from batchrank.io import parquet_files
from batchrank.io.parts import read_part_stats
from batchrank.io.validate import InputReport
from batchrank.job import JobResult
from batchrank.results import open_finished
from batchrank.storage import Location


def print_run_summary(result: JobResult) -> None:
    info = result.run_info
    if result.already_complete:
        click.echo(f"nothing to do: {result.output} is already complete ({result.total_pairs} pairs scored)")
        return
    click.echo(
        f"scored {result.total_pairs} pairs in {result.total_chunks} chunks "
        f"({result.chunks_scored} this run, {info['pairs_per_second_this_run']:.1f} pairs/s, "
        f"{info['truncated_pairs']} truncated)"
    )
    if "rejects" in info:
        reasons = ", ".join(f"{n} {reason}" for reason, n in info.get("rejected_by_reason", {}).items())
        click.echo(f"skipped {info['rejected_pairs']} bad rows{f' ({reasons})' if reasons else ''}: {info['rejects']}")
    click.echo(f"scores: {result.output / 'scores'}  run info: {result.output / 'run.json'}")


def print_preview(output: Location, queries: int, top: int = 3) -> None:
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
        title = f": {rows['query'][0]}" if "query" in rows.columns else ""
        click.echo(f"\n{query_id}{title}")
        for row in rows.iter_rows(named=True):
            text = f"  {_shorten(str(row['document']), 90)}" if "document" in row else ""
            click.echo(f"  {row['rank']:>3}  {row['score']:.4f}  {row['doc_id']}{text}")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_input_report(report: InputReport) -> None:
    click.echo(f"files: {report.files}  rows: {report.rows}  queries: {report.queries}")
    click.echo(f"query length (chars): {report.query_chars}")
    click.echo(f"document length (chars): {report.doc_chars}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")


def print_status(output_dir: str) -> None:
    out = OutputDir(output_dir)
    manifest = out.read_manifest()
    if manifest is None:
        with storage.reaching(out.root):
            storage.require_bucket(out.root)
        raise CheckpointError(f"{output_dir}: no job.json here; not a batchrank output directory (or not started)")
    done = [read_part_stats(out.part_path(c)) for c in manifest.chunks if out.part_path(c).exists()]
    scored, rejected = sum(s.pairs for s in done), sum(s.rejected_pairs for s in done)
    state = "complete" if out.success_path.exists() else "incomplete"
    click.echo(f"{output_dir}: {state}")
    # Rows of a finished chunk that were rejected while scoring (input.on_bad_rows: skip) are done, not scored.
    line = f"chunks: {len(done)}/{len(manifest.chunks)}  rows scored: {scored}/{manifest.total_rows}"
    click.echo(line + (f"  rejected while scoring: {rejected}" if rejected else ""))
