"""A deterministic stand-in for the vLLM scorer, for tests of the job machinery (kills, locks, write errors, engine
failures) that must not pay a 30-60 s engine start per run.

score(query, document) is sha256(query NUL document) mapped to [0, 1): a pair gets the same score whatever chunk or
run scores it, so a resumed output must equal an uninterrupted one exactly. A query longer than MAX_QUERY_CHARS
counts as a query too long for max_model_len, which the real scorer finds by tokenizing.

Run as a script, this file is the `batchrank` command with FakeScorer in place of vLLM's scorer, plus fault hooks
read from the environment (nothing in batchrank itself knows about them). The scorer's own faults (FAKE_SCORER_*,
FAKE_FAIL_*, FAKE_STALL_*, FAKE_EXIT_*) are read where the factory is made, in the driver, and travel with it to every Ray
actor, whatever environment the cluster gives its workers:

  FAKE_SCORER_SLEEP=S           sleep S seconds in each scorer call (so a kill lands mid-run)
  FAKE_FAIL_QUERY=QID           scoring the chunk that holds query QID raises ...
  FAKE_FAIL_TIMES=K             ... its first K times (default: always)
  FAKE_FAIL_DETAIL=TEXT         ... with TEXT in its message (as a library's error may quote what it was given)
  FAKE_STALL_QUERY=QID          scoring the chunk that holds query QID finishes nothing until the engine is stopped
                                (as vLLM's step waits for a prompt its scheduler never schedules)
  FAKE_SCORER_START_FAILS=TEXT  the scorer's start raises RuntimeError(TEXT) (an engine that cannot start)
  FAKE_EXIT_QUERY=QID           scoring the chunk that holds query QID kills the scoring process (SIGKILL: a
                                preempted or OOM-killed worker) ...
  FAKE_EXIT_TIMES=K             ... its first K times over every process, counted in the file FAKE_EXIT_COUNT_FILE
                                (default: always)
  FAKE_PAUSE_AT=WHERE           stop at WHERE, create the file FAKE_PAUSE_MARKER, and wait to be killed:
      part-write     half of a scores part is in its temporary file, not renamed yet
      chunk-rejects  a chunk's rejects part is in place, its scores part not written yet
      finish         every part is written; rejects.parquet, run.json and _SUCCESS are not
      success        run.json is written, _SUCCESS is not
  FAKE_PAUSE_AFTER_PARTS=N      pause only once this process has written N scores parts (default 0)
  FAKE_ENOSPC_AFTER=N           the Parquet writes of this process after the first N fail with ENOSPC (a full disk)
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from batchrank.scoring.base import ChunkAtATimeScorer, EnginePlacement, ModelFacts, PreparedChunk
from batchrank.spec import JobSpec

MAX_QUERY_CHARS = 200


def fake_score(query: str, document: str) -> float:
    digest = hashlib.sha256(f"{query}\0{document}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeScorer(ChunkAtATimeScorer):
    """Implements batchrank.scoring.base.Scorer without a model: one chunk scored per engine step."""

    kind = "qwen3-yes-no"
    calls_failed: dict[str, int] = {}  # per process: how often the FAKE_FAIL_QUERY chunk has raised

    def __init__(self, spec: JobSpec | None = None, faults: dict[str, str] | None = None):
        super().__init__()
        faults = scorer_faults() if faults is None else faults
        if faults.get("FAKE_SCORER_START_FAILS"):
            raise RuntimeError(faults["FAKE_SCORER_START_FAILS"])
        self.sleep = float(faults.get("FAKE_SCORER_SLEEP", "0"))
        self.fail_query = faults.get("FAKE_FAIL_QUERY")
        self.fail_times = int(faults.get("FAKE_FAIL_TIMES", "1000000"))
        self.fail_detail = faults.get("FAKE_FAIL_DETAIL", "")
        self.stall_query = faults.get("FAKE_STALL_QUERY")
        self.stopped = threading.Event()
        self.exit_query = faults.get("FAKE_EXIT_QUERY")
        self.exit_times = int(faults.get("FAKE_EXIT_TIMES", "1000000"))
        self.exit_count_file = faults.get("FAKE_EXIT_COUNT_FILE", os.devnull)
        # an engine's start line, as vLLM logs one: where it lands shows where the engine's lines go
        logging.getLogger("vllm.fake_engine").info("fake engine started in process %d", os.getpid())

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        queries, documents = pairs["query"].to_list(), pairs["document"].to_list()
        too_long = [i for i, query in enumerate(queries) if len(query) > MAX_QUERY_CHARS]
        tokens = sum(len(q) + len(d) for q, d in zip(queries, documents, strict=True))
        payload = (queries, documents, [str(q) for q in pairs["query_id"].unique().to_list()])
        longest = max((len(q) + len(d) for q, d in zip(queries, documents, strict=True)), default=0)
        return PreparedChunk(len(queries), tokens, 0, payload, too_long_rows=too_long, longest_prompt=longest)

    def score(self, prepared: PreparedChunk) -> np.ndarray:
        queries, documents, query_ids = prepared.payload
        time.sleep(self.sleep)
        if self.exit_query in query_ids:
            _exit_unless_done(self.exit_query, self.exit_times, Path(self.exit_count_file))
        if self.stall_query in query_ids:
            self.stopped.wait()
            raise RuntimeError("the engine was stopped")
        if self.fail_query in query_ids:
            failed = FakeScorer.calls_failed.get(self.fail_query, 0)
            if failed < self.fail_times:
                FakeScorer.calls_failed[self.fail_query] = failed + 1
                raise RuntimeError(f"injected engine failure for query {self.fail_query}{self.fail_detail}")
        return np.array([fake_score(q, d) for q, d in zip(queries, documents, strict=True)])

    def describe(self) -> dict[str, Any]:
        return {"kind": "fake", "template": "fake"}

    def engine_settings(self) -> dict[str, Any]:
        return {"max_model_len": "fake"}

    def abandon(self) -> None:
        super().abandon()
        self.stopped.set()


def scorer_faults() -> dict[str, str]:
    """The scorer's fault settings in this process's environment."""
    return {name: value for name, value in os.environ.items() if name.startswith(("FAKE_SCORER_", "FAKE_FAIL_",
                                                                                  "FAKE_EXIT_", "FAKE_STALL_"))}


def _exit_unless_done(query_id: str, times: int, counter: Path) -> None:
    """Kill this process, as the first `times` scorings of query_id's chunk (over all processes) do."""
    done = len(counter.read_text().splitlines()) if counter.is_file() else 0
    if done < times:
        if str(counter) != os.devnull:
            with open(counter, "a") as handle:
                handle.write(f"{os.getpid()} {query_id}\n")
        os.kill(os.getpid(), signal.SIGKILL)


class FakeScorerFactory:
    """Implements batchrank.scoring.base.ScorerFactory: no model directory is read, none is needed. The faults of
    this process's environment go with it (pickled, to Ray actors)."""

    def __init__(self) -> None:
        self.faults = scorer_faults()

    def inspect(self, spec: JobSpec) -> ModelFacts:
        return ModelFacts("qwen3-yes-no", {"kind": "qwen3-yes-no", "template": "fake"}, spec.model.max_model_len,
                          "fake-model-files", 0)

    def too_long_queries(self, spec: JobSpec, facts: ModelFacts, queries: list[str]) -> list[int]:
        return [i for i, query in enumerate(queries) if len(query) > MAX_QUERY_CHARS]

    def create(self, spec: JobSpec, placement: EnginePlacement) -> FakeScorer:
        return FakeScorer(spec, self.faults)


def use_fake_scorer() -> None:
    """Make FakeScorerFactory the default scorer factory of this process (what `batchrank run` builds)."""
    import batchrank.scoring as scoring

    scoring.default_scorer_factory = lambda keep_engine=False: FakeScorerFactory()


def _pause(where: str) -> None:
    Path(os.environ["FAKE_PAUSE_MARKER"]).write_text(where)
    while True:
        time.sleep(60)


def install_fault_hooks() -> None:
    """Wrap batchrank's write points as FAKE_PAUSE_AT and FAKE_ENOSPC_AFTER ask (see the module docstring)."""
    import pyarrow.parquet as pq

    import batchrank.job.finish as finish
    import batchrank.pipeline.write as write

    pause_at = os.environ.get("FAKE_PAUSE_AT")
    pause_after = int(os.environ.get("FAKE_PAUSE_AFTER_PARTS", "0"))
    enospc_after = os.environ.get("FAKE_ENOSPC_AFTER")
    state = {"writes": 0, "parts": 0}
    write_table = pq.write_table

    def faulty_write_table(table: Any, where: Any, *args: Any, **kwargs: Any) -> None:
        name = Path(getattr(where, "name", str(where)))
        is_scores_part = name.parent.name == "scores"
        state["writes"] += 1
        if enospc_after is not None and state["writes"] > int(enospc_after):
            buffer = io.BytesIO()
            write_table(table, buffer, *args, **kwargs)
            where.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # the disk fills mid-file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if pause_at == "part-write" and is_scores_part and state["parts"] >= pause_after:
            buffer = io.BytesIO()
            write_table(table, buffer, *args, **kwargs)
            where.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            where.flush()
            _pause(pause_at)
        write_table(table, where, *args, **kwargs)
        if is_scores_part:
            state["parts"] += 1

    pq.write_table = faulty_write_table

    if pause_at == "chunk-rejects":
        write_rejects = write.write_rejects

        def pausing_write_rejects(table: Any, destination: Any) -> int:
            size = write_rejects(table, destination)
            if state["parts"] >= pause_after:
                _pause(pause_at)
            return size

        write.write_rejects = pausing_write_rejects
    if pause_at == "finish":
        totals = finish.totals

        def pausing_totals(*args: Any) -> Any:
            _pause(pause_at)
            return totals(*args)

        finish.totals = pausing_totals
    if pause_at == "success":
        write_text = finish.write_text_or_fail

        def pausing_write_text(path: Any, text: str) -> None:
            if path.name == "_SUCCESS":
                _pause(pause_at)
            write_text(path, text)

        finish.write_text_or_fail = pausing_write_text


def main() -> None:
    from batchrank.cli import main as batchrank

    use_fake_scorer()
    install_fault_hooks()
    batchrank(sys.argv[1:], prog_name="batchrank")


if __name__ == "__main__":
    main()
