"""The layout of an output directory: the one place its file names are spelled, for writers and readers alike.

OUTPUT/
  job.json              the plan (chunks) and the fingerprint of what the parts depend on; written before any part
  scores/part-*.parquet one part per finished chunk, renamed into place when complete: a part that exists is done
  rejects/              with input.on_bad_rows: skip: plan.parquet (rows rejected before scoring) and
                        part-*.parquet (rows of a chunk rejected while scoring, written before its scores part)
  rejects.parquet       with input.on_bad_rows: skip: every rejected row with its reason, merged at the end
  ledger/*.json         finished parts as the driver recorded them (size, time, stats): a resume opens none (ledger.py)
  staging/              a copy of the input grouped by query, when its queries were scattered (removed at the end)
  run.json, _SUCCESS    written when every part exists; _SUCCESS last
  eval.json             metrics against eval.qrels
  report.html, report/  the report and its plots
  logs/engine.log       vLLM's and other libraries' log lines
  _FAILED.json          the last failure of a run (message, exit code, time); removed by the next run
  .lock                 the host and pid of the run that holds the directory, locked with fcntl.lockf while it runs
  _lock.json            instead of .lock in an object store (s3://, gs://): a lease with a heartbeat (lease.py)
"""

from __future__ import annotations

import os

from batchrank.storage import StoragePath

# The staged copy's extra column: each staged row's global row number in the input (names its file and row).
SOURCE_ROW = "__batchrank_source_row"


def part_name(chunk_id: int) -> str:
    return f"part-{chunk_id:06d}.parquet"


def chunk_id_of(name: str) -> int | None:
    """The chunk of a part's file name, or None for a file that is not a part."""
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return None
    digits = name[len("part-") : -len(".parquet")]
    return int(digits) if digits.isdigit() else None


class OutputLayout:
    """Where each of a job's files is, under one output directory (local or in an object store)."""

    def __init__(self, root: str | os.PathLike[str] | StoragePath):
        self.root = StoragePath.of(root)
        self.manifest = self.root / "job.json"
        self.scores = self.root / "scores"
        self.ledger = self.root / "ledger"
        self.rejects_dir = self.root / "rejects"
        self.plan_rejects = self.rejects_dir / "plan.parquet"
        self.rejects = self.root / "rejects.parquet"
        self.staging = self.root / "staging"
        self.staged_input = self.staging / "input-grouped-by-query.parquet"
        self.run_info = self.root / "run.json"
        self.success = self.root / "_SUCCESS"
        self.failure = self.root / "_FAILED.json"
        self.eval_json = self.root / "eval.json"
        self.report_html = self.root / "report.html"
        self.report_images = self.root / "report"
        self.logs = self.root / "logs"
        self.engine_log = self.logs / "engine.log"
        self.lock = self.root / (".lock" if self.root.supports_posix_locks else "_lock.json")

    def part(self, chunk_id: int) -> StoragePath:
        return self.scores / part_name(chunk_id)

    def chunk_rejects(self, chunk_id: int) -> StoragePath:
        return self.rejects_dir / part_name(chunk_id)

    def results(self) -> list[StoragePath]:
        """What a finished job's results are made of (what --overwrite removes; other files are left alone)."""
        return [self.manifest, self.success, self.run_info, self.rejects, self.failure, self.eval_json,
                self.report_html]

    def result_directories(self) -> list[StoragePath]:
        # The ledger first: a kill in the middle of a clear leaves parts without entries (opened on the next
        # start), never entries without their parts.
        return [self.ledger, self.scores, self.staging, self.rejects_dir, self.report_images]

    def written_examples(self) -> list[StoragePath]:
        """One file of each kind the job writes (to refuse an output whose files the input would pick up)."""
        return [self.part(0), self.chunk_rejects(0), self.staged_input, self.rejects, self.plan_rejects]

    def temporary_directories(self) -> list[StoragePath]:
        """Directories that may hold temporaries of a killed run."""
        return [self.root, self.scores, self.ledger, self.rejects_dir, self.staging, self.report_images]
