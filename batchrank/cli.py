"""The batchrank command line: run, validate, status."""

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

from batchrank.errors import BatchrankError, RunFailure

log = logging.getLogger("batchrank")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s batchrank %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # rebind to the current stderr on every invocation (in-process runners swap it)
    )
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
    """Score every pair of JOB's input and write ranked Parquet parts; resumes a killed run."""
    from batchrank.job import run_job
    from batchrank.report import print_preview, print_run_summary
    from batchrank.spec import load_spec

    spec = load_spec(job, overrides)
    if spec.model.trust_remote_code:
        log.warning("model.trust_remote_code is on: Python code from %s will run", spec.model.path)
    _stop_on_sigterm()
    result = run_job(spec, overwrite=overwrite)
    print_run_summary(result)
    if preview:
        print_preview(result.output, preview)


@main.command()
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field.")
@_user_errors
def validate(job: str, overrides: tuple[str, ...]) -> None:
    """Check JOB's spec and input (columns, nulls, empties, duplicates) without loading a model."""
    from batchrank.io.input import open_input, scan_pairs
    from batchrank.io.validate import build_row_index, inspect_input, raise_on_problems
    from batchrank.prompts import parse_template
    from batchrank.report import print_input_report
    from batchrank.spec import load_spec

    spec = load_spec(job, overrides)
    if spec.prompt.template:
        parse_template(spec.prompt.template)
    files = open_input(spec.input, spec.output.keep_columns)
    report = inspect_input(files, build_row_index(scan_pairs(spec.input, files, spec.output.keep_columns)))
    print_input_report(report)
    raise_on_problems(report)
    click.echo("input OK")


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False))
@_user_errors
def status(output_dir: str) -> None:
    """Show how far the job writing OUTPUT_DIR has come: chunks done / total, rows scored."""
    from batchrank.report import print_status

    print_status(output_dir)


if __name__ == "__main__":
    main()
