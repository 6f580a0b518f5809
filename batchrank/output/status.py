"""Where a job stands, read from its output directory without disturbing a run: for `batchrank status`.

A job is `complete` (_SUCCESS), `running` (a live run holds the lock or the lease), `failed` (the last run recorded
an error in _FAILED.json), or `stopped` (no run holds it and none recorded an error: it was killed, lost its
machine, or was interrupted). A scheduler branches on the exit code of `batchrank status` (EXIT_CODES).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from batchrank import storage
from batchrank.errors import INTERRUPTED_EXIT_CODE, CheckpointError
from batchrank.output.checkpoint import finished_chunks
from batchrank.output.layout import OutputLayout
from batchrank.output.lock import read_holder
from batchrank.output.manifest import read_manifest

EXIT_CODES = {"complete": 0, "running": 3, "failed": 4, "stopped": 5}  # 2: not a batchrank output directory


@dataclass
class JobStatus:
    output: str
    state: str
    chunks_done: int
    chunks: int
    rows_scored: int
    rows_planned: int  # rows to score (rows rejected before scoring are not among them)
    rejected_while_scoring: int
    rejected_before_scoring: int = 0  # bad rows the plan set aside (input.on_bad_rows: skip)
    run: dict[str, Any] | None = None  # the live run: host, pid, started (and the lease's age)
    last_error: dict[str, Any] | None = None  # _FAILED.json of the last run that failed

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.state]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def read_status(output_dir: str) -> JobStatus:
    layout = OutputLayout(output_dir)
    with storage.reaching(layout.root):
        manifest = read_manifest(layout)
        if manifest is None:
            layout.root.check_bucket()
            raise CheckpointError(f"{output_dir}: no job.json here; not a batchrank output directory (or not started)")
        done = finished_chunks(layout, manifest, repair=False)
        holder = read_holder(layout)
        complete = layout.success.exists()
        failure = None
        if not complete and holder is None and layout.failure.exists():
            try:
                failure = json.loads(layout.failure.read_text())
            except (OSError, ValueError):
                failure = {"message": f"{layout.failure} is unreadable"}
    run = None
    if holder is not None:
        info, age = holder
        run = {"host": info.get("host"), "pid": info.get("pid"), "started": info.get("started")}
        if age is not None:
            run["lease_renewed_seconds_ago"] = round(age, 1)
    # An interrupted run (Ctrl-C, a scheduler's SIGTERM) stopped; it did not fail. Its record says so.
    failed = failure is not None and failure.get("exit_code") != INTERRUPTED_EXIT_CODE
    state = "complete" if complete else "running" if run else "failed" if failed else "stopped"
    stats = [part.stats for part in done.values()]
    return JobStatus(str(layout.root), state, len(done), len(manifest.chunks), sum(s.pairs for s in stats),
                     manifest.total_rows, sum(s.rejected_pairs for s in stats), manifest.rejected_rows, run, failure)


def describe_since(started: float | None) -> str:
    if not started:
        return ""
    return f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"
