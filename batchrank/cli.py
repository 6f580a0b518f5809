"""The batchrank command line: run, validate, status, eval, export, report, mine, teacher.

Results go to stdout; batchrank's own progress and messages to stderr; the engine's and other libraries' log lines
to OUTPUT/logs/engine.log (-v shows them too). Exit codes (main's help lists them): 0 done, 2 a problem the user
must fix (nothing was scored), 1 a failure while running (rerun: it resumes), 75 the output is in use by another
run (wait, then rerun), 130 interrupted; `status` has its own (output/status.py).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from batchrank.errors import INTERRUPTED_EXIT_CODE, BatchrankError, RunFailure

log = logging.getLogger("batchrank")


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Map errors to exit codes: 2 for what the user can fix, 1 for a failed run, 130 for an interruption."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from batchrank.redact import redact  # messages quote exceptions, which may quote the environment

        try:
            return command(*args, **kwargs)
        except BatchrankError as error:
            click.echo(f"error: {redact(str(error))}", err=True)
            sys.exit(error.exit_code)
        except RunFailure as error:
            click.echo(f"error: {redact(str(error))}", err=True)
            if error.rerun_helps:
                click.echo("finished parts are kept; run the same command again to resume", err=True)
            else:
                click.echo("finished parts are kept; a rerun as it is stops the same way: fix the cause above "
                           "first, then the same command resumes", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; finished parts are kept; run the same command again to resume", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        except Exception:  # noqa: BLE001 - a bug: show the traceback, keep the exit code of a failed run
            click.echo(redact(traceback.format_exc()), err=True, nl=False)
            click.echo("error: unexpected failure (a bug in batchrank); finished parts are kept", err=True)
            sys.exit(1)

    return wrapper


def _stop_on_sigterm() -> None:
    # A scheduler's SIGTERM (and `ray job stop`'s) stops the job like Ctrl-C: the chunks in flight are dropped,
    # finished parts stay. (ray.init installs its own handler, sys.exit(15); the Ray executor puts this one back.)
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.group()
@click.version_option(package_name="batchrank")
@click.option("-v", "--verbose", is_flag=True, help="batchrank's debug lines, and the engine's log on stderr too.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only on stderr (results still go to stdout).")
@click.pass_context
def main(context: click.Context, verbose: bool, quiet: bool) -> None:
    """Offline batch reranking of (query, document) pairs with vLLM, checkpointed to Parquet.

    \b
    Exit codes:
      0    done
      1    a failure while running: fix the cause if any, rerun the same command (it resumes)
      2    a problem to fix first: the spec, input, model, qrels or ids (nothing was scored;
           for `run` with eval.qrels, the message says when the scores are complete and only
           the evaluation was refused)
      75   the output is in use by another run (nothing was done: wait, then rerun)
      130  interrupted (Ctrl-C, SIGTERM): rerun to resume
      `status` has its own: 0 complete, 3 running, 4 failed, 5 stopped, 2 not an output
    """
    from batchrank.logs import configure_console

    configure_console(1 if verbose else -1 if quiet else 0)
    context.obj = {"verbose": verbose, "quiet": quiet}


@main.command()
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field, e.g. run.chunk_size=500.")
@click.option("--overwrite", is_flag=True, help="Discard the output directory's previous results and start over.")
@click.option("--preview", default=3, show_default=True, help="Print the top results of this many queries at the end.")
@_user_errors
def run(job: str, overrides: tuple[str, ...], overwrite: bool, preview: int) -> None:
    """Score every pair of JOB's input and write ranked Parquet parts; resumes a killed run.

    At the end: the metrics table and OUTPUT/eval.json when eval.qrels is set, and OUTPUT/report.html.
    JOB is a YAML file, a local path or an s3:// / gs:// URI.

    Exit code: 0 done, 1 failed while running (rerun: it resumes), 2 a spec, input or model to fix, 75 the output
    is in use by another run (wait, then rerun), 130 interrupted.
    """
    from batchrank.console import print_preview, print_run_summary
    from batchrank.job import run_job
    from batchrank.spec import load_spec

    spec = load_spec(job, overrides)
    if spec.model.trust_remote_code:
        log.warning("model.trust_remote_code is on: Python code from %s will run", spec.model.path)
    _stop_on_sigterm()
    # The process ends with the job, so its engine is never needed again; kept, it serves the next job of a process
    # that runs several (a test session). run_job keeps the engine's lines in OUTPUT/logs/engine.log (-v: on stderr
    # too, as the batchrank logger is at DEBUG).
    result = run_job(spec, overwrite=overwrite, keep_engine=True)
    print_run_summary(result)
    if preview:
        print_preview(result.output, preview)


@main.command()
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field.")
@_user_errors
def validate(job: str, overrides: tuple[str, ...]) -> None:
    """Check JOB's spec, model and input (columns, nulls, empties, duplicates, queries too long for the model)
    without starting an engine.

    With input.on_bad_rows: skip, lists what a run would skip.
    """
    from functools import partial

    from batchrank import scoring
    from batchrank.console import print_input_report, print_model_facts
    from batchrank.planning.memory import PlanMemory
    from batchrank.planning.preflight import check_job
    from batchrank.planning.spill import scratch_directory
    from batchrank.planning.validate import check_rows, raise_if_nothing_left, raise_on_problems
    from batchrank.spec import load_spec

    spec = load_spec(job, overrides)
    factory = scoring.default_scorer_factory()
    checked = check_job(spec, factory)
    if checked.qrels is not None:
        click.echo(f"qrels: {checked.qrels.frame.height} judgments in {spec.eval.qrels}")
    print_model_facts(checked.model)
    with scratch_directory() as scratch:
        too_long = partial(factory.too_long_queries, spec, checked.model)
        check = check_rows(checked.files, spec.input.on_bad_rows, scratch, too_long, memory=PlanMemory.of(spec.run))
    print_input_report(check.report)
    if spec.input.on_bad_rows == "error" or check.rejects is None:
        raise_on_problems(check.report)
        click.echo("input OK")
        return
    click.echo(f"input.on_bad_rows is skip: a run would skip {check.rejected_rows} of {check.report.rows} rows "
               f"({check.summarize_rejects()}) and list them in OUTPUT/rejects.parquet")
    raise_if_nothing_left(check, spec.input.path)
    click.echo(f"input OK: {check.report.rows - check.rejected_rows} rows to score")


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_user_errors
def status(output_dir: str, as_json: bool) -> None:
    """Say whether the job writing OUTPUT_DIR is complete, running, failed or stopped, and how far it came.

    Exit code: 0 complete, 3 running, 4 failed (the last run's error is shown), 5 stopped (killed), 2 not a
    batchrank output directory.
    """
    from batchrank.console import print_status
    from batchrank.output.status import read_status

    state = read_status(output_dir)
    print_status(state, as_json)
    sys.exit(state.exit_code)


def _qrels_or_the_specs(output_dir: str, qrels: str | None, required: bool) -> str | None:
    """--qrels, or else the job spec's eval.qrels (run.json keeps it as an absolute path: any directory works)."""
    from batchrank.errors import SpecError
    from batchrank.results import open_finished

    if qrels is not None:
        return qrels
    configured = (open_finished(output_dir).run_info.get("spec", {}).get("eval") or {}).get("qrels")
    if configured:
        click.echo(f"qrels from the job spec: {configured}", err=True)
        return str(configured)
    if required:
        raise SpecError(f"no qrels: pass --qrels QRELS, or set eval.qrels in the job spec of {output_dir} "
                        "(then `batchrank run` evaluates at the end, and eval and report take it by default)")
    return None


@main.command(name="eval")
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--qrels", type=click.Path(dir_okay=False),
              help="TREC qrels (qid 0 docid grade) or Parquet (query_id, doc_id, relevance); default: the job "
              "spec's eval.qrels.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@_user_errors
def eval_command(output_dir: str, qrels: str | None, as_json: bool) -> None:
    """nDCG@10, MRR@10, Recall@100 and MAP of OUTPUT_DIR's ranking, next to the first stage's.

    Refused (exit 2) when the qrels' ids and the output's meet too little for the numbers to measure the ranking;
    partial mismatches and tied scores are reported.
    """
    import json

    from batchrank.eval import evaluate, format_table
    from batchrank.qrels import read_qrels

    evaluation = evaluate(output_dir, read_qrels(_qrels_or_the_specs(output_dir, qrels, required=True)))
    for note in evaluation.warnings():
        click.echo(f"warning: {note}", err=True)
    click.echo(json.dumps(evaluation.to_json()) if as_json else format_table(evaluation))


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["trec", "jsonl"]), default="trec", show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=None, help="Only each query's best K rows.")
@click.option("--tag", default="batchrank", show_default=True, help="The run tag (last column of a TREC run).")
@click.option("-o", "--output", "destination", help="Write FILE (a path or an s3:// URI), not stdout.")
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
    from batchrank.eval import evaluate, format_table, write_eval_json
    from batchrank.qrels import read_qrels
    from batchrank.report_html import write_report

    qrels = _qrels_or_the_specs(output_dir, qrels, required=False)
    judgments = read_qrels(qrels) if qrels else None
    evaluation = evaluate(output_dir, judgments) if judgments is not None else None
    if evaluation is not None:
        click.echo("\n" + format_table(evaluation))
        for note in evaluation.warnings():
            click.echo(f"warning: {note}", err=True)
        write_eval_json(evaluation, output_dir)
    click.echo(f"report: {write_report(output_dir, evaluation, judgments)}")


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--qrels", required=True, type=click.Path(dir_okay=False),
              help="The positives: TREC qrels (qid 0 docid grade) or Parquet (query_id, doc_id, relevance).")
@click.option("-o", "--output", "destination", required=True, metavar="FILE",
              help="The training file: FILE.parquet or FILE.jsonl (a path or an s3:// URI).")
@click.option("--format", "layout", default="triplet", show_default=True,
              type=click.Choice(["triplet", "n-tuple", "labeled-pair", "labeled-list", "flag-embedding"]),
              help="sentence-transformers' layouts (mine_hard_negatives' output_format), or FlagEmbedding's.")
@click.option("--num-negatives", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--range-min", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many of the best candidates left (after positives and filters are out).")
@click.option("--range-max", type=click.IntRange(min=1), default=None,
              help="Take negatives among this many of the best candidates left. Default: range-min + "
                   "num-negatives (x10 with a margin or max-score) + the most positives a query has.")
@click.option("--max-score", type=float, help="Candidates scoring above this are no negatives.")
@click.option("--min-score", type=float, help="Candidates scoring below this are no negatives.")
@click.option("--absolute-margin", type=float,
              help="No negative scores within this of the query's lowest positive (0: below it).")
@click.option("--relative-margin", type=float,
              help="No negative scores above positive - |positive| x this (0.05: 5% below the lowest positive).")
@click.option("--sampling", "sampling_strategy", type=click.Choice(["top", "random"]), default="top",
              show_default=True, help="top: the best candidates left; random: a seeded sample of them.")
@click.option("--seed", type=int, default=0, show_default=True, help="The random sampling's seed.")
@click.option("--include-positives", is_flag=True, help="Positives may be among the negatives (n-tuple only).")
@click.option("--scores", "with_scores", is_flag=True, help="Add the scores (mine_hard_negatives' output_scores).")
@click.option("--min-relevance", type=int, default=1, show_default=True, help="The lowest grade of a positive.")
@_user_errors
def mine(output_dir: str, qrels: str, destination: str, layout: str, with_scores: bool, min_relevance: int,
         **options: Any) -> None:
    """Hard negatives of OUTPUT_DIR's reranked candidates for the qrels' positives, as sentence-transformers'
    mine_hard_negatives picks them, with their texts, written as a training file."""
    from batchrank.qrels import read_qrels
    from batchrank.training.mine import mine as mine_negatives
    from batchrank.training.mining import MiningOptions

    report = mine_negatives(output_dir, read_qrels(qrels), destination, MiningOptions(**options),
                            layout, with_scores, min_relevance)  # type: ignore[arg-type]
    for line in report.lines():
        click.echo(line, err=True)


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", "destination", required=True, metavar="FILE",
              help="The training file: FILE.parquet or FILE.jsonl (a path or an s3:// URI).")
@click.option("--format", "layout", default="listwise", show_default=True,
              type=click.Choice(["listwise", "pointwise", "flag-embedding"]),
              help="listwise: query, documents, scores; pointwise: query, document, score; flag-embedding: query, "
                   "pos, neg, pos_scores, neg_scores (needs --qrels).")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Each query's best K candidates (flag-embedding: its best K that are not positives).")
@click.option("--qrels", type=click.Path(dir_okay=False), help="The positives, for --format flag-embedding.")
@click.option("--score", type=click.Choice(["logit", "probability"]), default="logit", show_default=True,
              help="logit: the run's logits (an embedding model's similarity); probability: P, or the sigmoid of "
                   "the logit.")
@click.option("--min-relevance", type=int, default=1, show_default=True, help="The lowest grade of a positive.")
@_user_errors
def teacher(output_dir: str, destination: str, layout: str, top: int | None, qrels: str | None, score: str,
            min_relevance: int) -> None:
    """Teacher labels of OUTPUT_DIR for distillation: each query's documents, texts and teacher scores."""
    from batchrank.qrels import read_qrels
    from batchrank.training.teacher import teacher_labels

    judgments = read_qrels(qrels) if qrels else None
    report = teacher_labels(output_dir, destination, layout, top, judgments, score, min_relevance)  # type: ignore[arg-type]
    for line in report.lines():
        click.echo(line, err=True)


if __name__ == "__main__":
    main()
