"""One job end to end: check, plan or resume, score the missing chunks, finish the output, evaluate and report."""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchrank import scoring
from batchrank.engine_log import EngineLog
from batchrank.environment import give_back_freed_memory, scoped_environment
from batchrank.errors import INTERRUPTED_EXIT_CODE, InputDataError
from batchrank.execute import run_executor
from batchrank.execute.placement import choose_executor
from batchrank.io.parts import PartWritten
from batchrank.job.finish import finish
from batchrank.output.checkpoint import find_finished, remove_temporaries
from batchrank.output.layout import OutputLayout
from batchrank.output.lock import OutputLock
from batchrank.pipeline.context import JobContext
from batchrank.planning.fingerprint import job_fingerprint
from batchrank.planning.job_plan import make_plan, resume
from batchrank.planning.preflight import Checked, check_job
from batchrank.progress import Progress
from batchrank.qrels import Qrels
from batchrank.redact import redact
from batchrank.scoring.base import ScorerFactory
from batchrank.spec import JobSpec
from batchrank.storage import StoragePath

if TYPE_CHECKING:
    from batchrank.eval import Evaluation

log = logging.getLogger("batchrank")


@dataclass(frozen=True)
class JobResult:
    """What a finished `run_job` returns (the CLI prints it; a pipeline task reads it)."""

    output: str  # OUTPUT/ (an absolute path, or a URI), with scores/part-*.parquet, run.json, _SUCCESS
    total_pairs: int  # pairs scored over every run (rows rejected while scoring are not among them)
    total_chunks: int
    chunks_scored: int  # by this run
    already_complete: bool  # a rerun of a finished job: nothing was done
    run_info: dict[str, Any]  # run.json
    evaluation: Evaluation | None = None  # with eval.qrels
    report: StoragePath | None = None  # OUTPUT/report.html
    report_error: str | None = None  # why report.html could not be written (the scores are complete)

    @property
    def pairs_per_second(self) -> float:
        return float(self.run_info.get("pairs_per_second_this_run", 0.0))


def count_gpus() -> int:
    """GPUs this process can use (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_job(spec: JobSpec, overwrite: bool = False, scorer_factory: ScorerFactory | None = None,
            keep_engine: bool = False) -> JobResult:
    """Score every pair of the job's input once, resuming from the parts already in the output directory.

    Args:
        spec: the job (`batchrank.load_spec(path, overrides)`).
        overwrite: discard the output directory's previous results and start over.
        scorer_factory: what scores (default: vLLM, `batchrank.scoring.default_scorer_factory`).
        keep_engine: leave the engine running when the job ends, for another job in this process.

    Raises BatchrankError (SpecError, InputDataError, CheckpointError, StorageError) for what the user must fix,
    with nothing scored; RunFailure for a failure while running (rerun to resume); KeyboardInterrupt.

    The engine's and other libraries' log lines (vLLM's, the Ray workers') go to OUTPUT/logs/engine.log, not to
    the caller's stdout; with the `batchrank` logger at DEBUG, to stderr as well.
    """
    # The caller's environment is given back as it was (what vLLM and its engine core need is set and unset here).
    with scoped_environment():
        engine_log = EngineLog()
        layout: OutputLayout | None = None
        try:
            factory = scorer_factory if scorer_factory is not None else scoring.default_scorer_factory(keep_engine)
            checked = check_job(spec, factory)  # spec, input schema, model, qrels: before anything is written
            layout = OutputLayout(spec.output.path)
            lock = OutputLock(layout)
            lock.acquire()
            try:
                return _run_locked(checked, layout, factory, overwrite)
            finally:
                lock.release()
        finally:
            engine_log.close(layout.engine_log if layout is not None and _has_plan(layout) else None)
            give_back_freed_memory()


def _has_plan(layout: OutputLayout) -> bool:
    """Whether the run got as far as writing its plan (a refused or unreachable output gets no log file)."""
    try:
        return bool(layout.manifest.exists())
    except Exception:  # noqa: BLE001 - an unreachable store: the job's own error says so
        return False


def _run_locked(checked: Checked, layout: OutputLayout, factory: ScorerFactory, overwrite: bool) -> JobResult:
    spec = checked.spec
    fingerprint = job_fingerprint(spec, checked.files, checked.model)
    manifest = None if overwrite else resume(checked, layout, fingerprint)
    if manifest is not None and layout.success.exists():
        return _already_complete(layout, checked.qrels, len(manifest.chunks))
    if manifest is None:
        if overwrite:
            log.info("--overwrite: removing the previous results in %s", layout.root)
        manifest = make_plan(checked, layout, fingerprint, factory)
    context = JobContext(spec, checked.files, manifest, layout, checked.model)
    try:
        return _score_and_finish(context, factory, checked.qrels)
    except BaseException as error:
        _record_failure(layout, error)
        raise


def _score_and_finish(context: JobContext, factory: ScorerFactory, qrels: Qrels | None) -> JobResult:
    layout, manifest = context.layout, context.manifest
    remove_temporaries(layout)
    found = find_finished(layout, manifest)
    done = found.done
    pending = [c for c in manifest.chunks if c.chunk_id not in done]
    if done:
        log.info("resuming: %d of %d chunks already scored, %d to go", len(done), len(manifest.chunks), len(pending))
    if found.removed:
        log.warning("%d damaged part(s) removed; their chunks are scored again", found.removed)
    progress = Progress(manifest.total_rows, sum(c.num_rows for c in manifest.chunks if c.chunk_id in done),
                        len(manifest.chunks), len(done))
    ledger = found.ledger(layout)
    if not found.ledger_is_compact:
        ledger.compact()  # the next start (and `batchrank status`) reads one file and opens no part

    def on_part(part: PartWritten) -> None:
        done[part.stats.chunk_id] = part
        ledger.record(part)
        progress.chunk_done(part.stats.chunk_id, part.stats.pairs + part.stats.rejected_pairs, part.stats.pairs)

    execution = None
    try:
        if pending:
            executor = choose_executor(context.spec, count_gpus(), context.model.weight_bytes)
            execution = run_executor(executor, context, factory, pending, on_part, progress.start_scoring)
    finally:
        ledger.flush()
        progress.close()
    if pending:
        ledger.compact()
    run_info = finish(context, done, len(pending), progress, execution)
    evaluation, report, report_error = _evaluate_and_report(layout, qrels, rewrite=True)
    return JobResult(str(layout.root.absolute()), run_info["pairs"], len(manifest.chunks), len(pending), False,
                     run_info, evaluation, report, report_error)


def _already_complete(layout: OutputLayout, qrels: Qrels | None, chunks: int) -> JobResult:
    """A rerun of a finished job does nothing and writes nothing (eval.json and report.html only if missing)."""
    run_info = json.loads(layout.run_info.read_text())
    evaluation, report, report_error = _evaluate_and_report(layout, qrels, rewrite=False)
    return JobResult(str(layout.root.absolute()), run_info.get("pairs", 0), chunks, 0, True, run_info, evaluation,
                     report, report_error)


def _evaluate_and_report(layout: OutputLayout, qrels: Qrels | None,
                         rewrite: bool) -> tuple[Evaluation | None, StoragePath | None, str | None]:
    evaluation = None
    if qrels is not None:
        from batchrank.eval import evaluate  # ir-measures, only where metrics are asked for

        try:
            evaluation = evaluate(layout.root, qrels)
        except InputDataError as error:  # ids that do not meet: say that the scores themselves are done
            raise InputDataError(f"{error}. The scores are complete in {layout.root}; fix the ids, then "
                                 f"`batchrank eval {layout.root} --qrels QRELS` (or --set eval.qrels=null)") from None
    if evaluation is not None and (rewrite or not _same_evaluation(layout, evaluation)):
        from batchrank.eval import write_eval_json

        write_eval_json(evaluation, layout.root)
    if not rewrite and layout.report_html.exists() and (evaluation is None or _same_evaluation(layout, evaluation)):
        return evaluation, layout.report_html, None
    try:
        from batchrank.report_html import write_report  # matplotlib, ir-measures: not needed to score

        return evaluation, write_report(layout.root, evaluation, qrels), None
    except Exception as error:  # noqa: BLE001 - the scores are complete; a missing report is not a failed job
        reason = f"{type(error).__name__}: {error}"
        log.warning("report.html not written (%s); the scores are complete; `batchrank report %s` retries",
                    reason, layout.root)
        return evaluation, None, reason


def _same_evaluation(layout: OutputLayout, evaluation: Evaluation) -> bool:
    try:
        return json.loads(layout.eval_json.read_text()).get("qrels") == evaluation.qrels_path
    except (OSError, ValueError):
        return False


def _record_failure(layout: OutputLayout, error: BaseException) -> None:
    """OUTPUT/_FAILED.json: why the last run stopped, for `batchrank status` (the next run removes it)."""
    if isinstance(error, KeyboardInterrupt):
        message, code = "interrupted (Ctrl-C or SIGTERM)", INTERRUPTED_EXIT_CODE
    else:
        message, code = redact(f"{error}"), getattr(error, "exit_code", 1)
    record = {"message": message.splitlines()[0] if message else type(error).__name__, "error": type(error).__name__,
              "exit_code": code, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname()}
    if not getattr(error, "rerun_helps", True):
        record["rerun_helps"] = False  # fix the cause first: a rerun as it is stops the same way
    try:
        layout.failure.write_text(json.dumps(record, indent=1))
    except OSError:
        pass  # a full disk may be why the run failed; the exit code still says it
