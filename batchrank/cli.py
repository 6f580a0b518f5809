"""The batchrank command line: run, validate, status, eval, export, report."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from batchrank.errors import BatchrankError, RunFailure

if TYPE_CHECKING:
    from batchrank.storage import ObjectPath

log = logging.getLogger("batchrank")


def _configure_logging(verbose: bool) -> None:
    # Other libraries' INFO lines (torch, Triton probes) stay quiet unless -v; batchrank's own are shown.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # rebind to the current stderr on every invocation (in-process runners swap it)
    )
    logging.getLogger("batchrank").setLevel(logging.DEBUG if verbose else logging.INFO)
    # vLLM's start-up chatter drowns the job's own lines; -v brings it back.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "DEBUG" if verbose else "WARNING")


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Map errors to exit codes: 2 for what the user can fix, 1 for a failed run, 130 for an interruption."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BatchrankError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except RunFailure as error:
            click.echo(f"error: {error}", err=True)
            click.echo("finished parts are kept; run the same command again to resume", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; finished parts are kept; run the same command again to resume", err=True)
            sys.exit(130)
        except Exception:  # noqa: BLE001 - a bug: show the traceback, keep the exit code of a failed run
            traceback.print_exc()
            click.echo("error: unexpected failure (a bug in batchrank); finished parts are kept", err=True)
            sys.exit(1)

    return wrapper


def _stop_on_sigterm() -> None:
    # A scheduler's SIGTERM stops the job like Ctrl-C: the chunk in flight is dropped, finished parts stay.
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.group()
@click.version_option(package_name="batchrank")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, including vLLM's own.")
def main(verbose: bool) -> None:
    """Offline batch reranking of (query, document) pairs with vLLM, checkpointed to Parquet."""
    _configure_logging(verbose)


@main.command()
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field, e.g. run.chunk_size=500.")
@click.option("--overwrite", is_flag=True, help="Discard the output directory's previous results and start over.")
@click.option("--preview", default=3, show_default=True, help="Print the top results of this many queries at the end.")
@_user_errors
def run(job: str, overrides: tuple[str, ...], overwrite: bool, preview: int) -> None:
    """Score every pair of JOB's input and write ranked Parquet parts; resumes a killed run.

    At the end: the metrics table and OUTPUT/eval.json when eval.qrels is set, and OUTPUT/report.html.
    """
    from batchrank.job import run_job
    from batchrank.report import print_preview, print_run_summary
    from batchrank.spec import load_spec

    spec = load_spec(job, overrides)
    if spec.model.trust_remote_code:
        log.warning("model.trust_remote_code is on: Python code from %s will run", spec.model.path)
    qrels = None
    if spec.eval.qrels:  # read first: a bad qrels file should stop the job before hours of scoring, not after
        from batchrank.qrels import read_qrels

        qrels = read_qrels(spec.eval.qrels)
    _stop_on_sigterm()
    result = run_job(spec, overwrite=overwrite)
    print_run_summary(result)
    _evaluate_and_report(result.output, qrels, after_run=True)
    if preview:
        print_preview(result.output, preview)


@main.command()
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field.")
@_user_errors
def validate(job: str, overrides: tuple[str, ...]) -> None:
    """Check JOB's spec and input (columns, nulls, empties, duplicates) without loading a model.

    With input.on_bad_rows: skip, lists what a run would skip (queries too long for max_model_len are only found
    while scoring, when the model's tokenizer is at hand).
    """
    from batchrank.io.input import open_input, scan_pairs
    from batchrank.io.validate import (
        build_row_index,
        inspect_input,
        raise_on_problems,
        reject_reasons,
        summarize_reasons,
    )
    from batchrank.prompts import parse_template
    from batchrank.report import print_input_report
    from batchrank.spec import load_spec

    spec = load_spec(job, overrides)
    if spec.prompt.template:
        parse_template(spec.prompt.template)
    if spec.eval.qrels:
        from batchrank.qrels import read_qrels

        click.echo(f"qrels: {read_qrels(spec.eval.qrels).frame.height} judgments in {spec.eval.qrels}")
    files = open_input(spec.input, spec.output.keep_columns)
    index = build_row_index(scan_pairs(spec.input, files, spec.output.keep_columns), files)
    report = inspect_input(files, index)
    print_input_report(report)
    if spec.input.on_bad_rows == "error" or not report.problems:
        raise_on_problems(report)
        click.echo("input OK")
        return
    reasons = reject_reasons(index)
    skipped = len(reasons) - reasons.null_count()
    click.echo(f"input.on_bad_rows is skip: a run would skip {skipped} of {index.height} rows "
               f"({summarize_reasons(reasons)}) and list them in OUTPUT/rejects.parquet")
    if skipped == index.height:
        raise_on_problems(report)
    click.echo(f"input OK: {index.height - skipped} rows to score")


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@_user_errors
def status(output_dir: str) -> None:
    """Show how far the job writing OUTPUT_DIR has come: chunks done / total, rows scored."""
    from batchrank.report import print_status

    print_status(output_dir)


def _evaluate_and_report(output: str | os.PathLike[str] | ObjectPath, qrels: Any, after_run: bool = False) -> None:
    """With qrels: print the metrics table and write OUTPUT/eval.json. Always: write OUTPUT/report.html."""
    evaluation = None
    if qrels is not None:
        from batchrank.eval import evaluate, format_table, write_eval_json

        evaluation = evaluate(output, qrels)
        click.echo("\n" + format_table(evaluation))
        for note in evaluation.warnings():
            click.echo(f"warning: {note}", err=True)
        write_eval_json(evaluation, output)
    try:
        from batchrank.report_html import write_report

        click.echo(f"report: {write_report(output, evaluation, qrels)}")
    except Exception as error:  # noqa: BLE001 - after a run the scores are complete; a missing report is not fatal
        if not after_run:
            raise
        log.warning("report.html not written (%s: %s); the scores are complete; `batchrank report %s` retries",
                    type(error).__name__, error, output)


@main.command(name="eval")
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--qrels", required=True, type=click.Path(dir_okay=False),
              help="TREC qrels (qid 0 docid grade) or Parquet (query_id, doc_id, relevance).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@_user_errors
def eval_command(output_dir: str, qrels: str, as_json: bool) -> None:
    """nDCG@10, MRR@10, Recall@100 and MAP of OUTPUT_DIR's ranking, next to the first stage's."""
    import json

    from batchrank.eval import evaluate, format_table
    from batchrank.qrels import read_qrels

    evaluation = evaluate(output_dir, read_qrels(qrels))
    for note in evaluation.warnings():
        click.echo(f"warning: {note}", err=True)
    click.echo(json.dumps(evaluation.to_json()) if as_json else format_table(evaluation))


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["trec", "jsonl"]), default="trec", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=None, help="Only each query's best K rows.")
@click.option("--tag", default="batchrank", show_default=True, help="The run tag (last column of a TREC run).")
@click.option("-o", "--output", "destination", type=click.Path(dir_okay=False), help="Write FILE, not stdout.")
@_user_errors
def export(output_dir: str, fmt: str, top: int | None, tag: str, destination: str | None) -> None:
    """Write OUTPUT_DIR's ranking as a TREC run file (qid Q0 docid rank score tag) or JSON lines."""
    from batchrank.export import export as export_ranking
    from batchrank.export import export_to_path

    if destination is None:
        try:
            export_ranking(output_dir, fmt, sys.stdout.buffer, top, tag)  # type: ignore[arg-type]
            sys.stdout.flush()
        except OSError as error:  # `batchrank export OUT | head`: the reader has all it wants
            # polars reports a closed pipe as a plain OSError("Broken pipe (os error 32)"), errno unset.
            if not isinstance(error, BrokenPipeError) and "os error 32" not in str(error):
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    else:
        rows = export_to_path(output_dir, fmt, destination, top, tag)  # type: ignore[arg-type]
        click.echo(f"wrote {rows} rows to {destination}", err=True)


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--qrels", type=click.Path(dir_okay=False), help="Add metrics; default: the job spec's eval.qrels.")
@_user_errors
def report(output_dir: str, qrels: str | None) -> None:
    """Write OUTPUT_DIR/report.html (metrics, plots, settings) and the plots as OUTPUT_DIR/report/*.png."""
    from pathlib import Path

    from batchrank.qrels import read_qrels
    from batchrank.results import open_finished

    configured = (open_finished(output_dir).run_info.get("spec", {}).get("eval") or {}).get("qrels")
    if qrels is None and configured and Path(configured).is_file():
        qrels = configured
        click.echo(f"qrels from the job spec: {qrels}", err=True)
    _evaluate_and_report(output_dir, read_qrels(qrels) if qrels else None)


if __name__ == "__main__":
    main()
