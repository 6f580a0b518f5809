"""How long finding what is done takes over many finished parts: the resume check and `batchrank status`.

Fabricates an output directory as a job leaves it after N chunks (small real parts written with write_part, job.json
through output.manifest, the ledger batches PartLedger writes as the driver records each part), then times, each in
a fresh process as a user meets it:
  resume    output.checkpoint.finished_chunks with the ledger (what `batchrank run` does on start)
  footers   the same without the ledger: every part's footer read, in parallel
  status    `batchrank status OUT` and `batchrank status OUT --json`

usage (repo root):
  python -m batchrank.bench.resume_bench make OUT --parts 50000 [--rows 20] [--processes N]
      # OUT: a directory or s3://bucket/prefix; --finished N: also run.json, _SUCCESS and OUT-qrels.parquet
      # (every N-th query judged), for eval, export and the report
  python -m batchrank.bench.resume_bench time OUT [--requests MOTO_LOG] [--skip-footers]
      # MOTO_LOG: moto's request log, to count each step's requests
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from batchrank.io.parts import ChunkStats, PartWritten, rank_within_queries, write_part
from batchrank.output.checkpoint import PartLedger, find_finished
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import Manifest, read_manifest, write_manifest
from batchrank.plan import Chunk
from batchrank.storage import StoragePath

DOCS_PER_QUERY = 10  # a query is whole in its part, as a plan cuts them
BATCHRANK = str(Path(sys.executable).with_name("batchrank"))

# The resume check as `batchrank run` makes it, in a fresh process; prints JSON with the seconds it took.
_RESUME = """
import json, sys, time
started = time.perf_counter()
from batchrank.output.checkpoint import finished_chunks
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import read_manifest
imported = time.perf_counter()
layout = OutputLayout(sys.argv[1])
manifest = read_manifest(layout)
read = time.perf_counter()
done = finished_chunks(layout, manifest, repair=False)
print(json.dumps({"done": len(done), "import_s": imported - started, "manifest_s": read - imported,
                  "finished_chunks_s": time.perf_counter() - read}))
"""


def _part_frame(chunk_id: int, rows: int) -> pl.DataFrame:
    """Queries of DOCS_PER_QUERY pairs, ranked by a made-up score; first_stage_rank in document order."""
    frame = pl.DataFrame({"row": np.arange(rows)}).select(
        query_id=pl.format(f"q{chunk_id}-{{}}", pl.col("row") // DOCS_PER_QUERY),
        doc_id=pl.format(f"d{chunk_id}-{{}}", pl.col("row")),
        score=((pl.col("row") * 104729 + chunk_id * 7919) % 1000) / 1000,
        first_stage_rank=(pl.col("row") % DOCS_PER_QUERY + 1).cast(pl.Int32),
    )
    return rank_within_queries(frame).select("query_id", "doc_id", "score", "rank", "first_stage_rank")


def _write_parts(root: str, first: int, count: int, rows: int) -> list[PartWritten]:
    layout = OutputLayout(root)
    written = []
    for chunk_id in range(first, first + count):
        stats = ChunkStats(chunk_id, rows, 40 * rows, 0, 0.5 + chunk_id % 3, time.time(), worker=f"worker-{chunk_id % 8}")
        size = write_part(_part_frame(chunk_id, rows), layout.part(chunk_id), stats)
        info = layout.part(chunk_id).info()
        written.append(PartWritten(stats, size, part_mtime_ns=info.mtime_ns))
    return written


def _finish(root: str, parts: int, rows: int, judged_every: int) -> None:
    """run.json, _SUCCESS, and qrels beside the output (one relevant document for every judged_every-th query),
    as eval, export and the report expect a finished job."""
    layout = OutputLayout(root)
    queries = rows // DOCS_PER_QUERY
    judged = np.arange(0, parts * queries, judged_every)
    qrels_path = str(StoragePath.of(root).parent / f"{StoragePath.of(root).name}-qrels.parquet")
    qrels = pl.DataFrame({"chunk": judged // queries, "query": judged % queries}).select(
        query_id=pl.format("q{}-{}", "chunk", "query"),
        doc_id=pl.format("d{}-{}", "chunk", pl.col("query") * DOCS_PER_QUERY + 3), relevance=pl.lit(1))
    with StoragePath.of(qrels_path).atomic_writer() as handle:
        qrels.write_parquet(handle)
    spec = {"input": {"path": "/nonexistent/fabricated.parquet", "columns": {}},
            "model": {"path": "/nonexistent/model"}, "run": {"chunk_size": rows},
            "output": {"path": root, "keep_columns": ["first_stage_rank"]}, "eval": {"qrels": qrels_path}}
    run_info = {"spec": spec, "model": {"path": "/nonexistent/model", "kind": "fabricated"}, "chunks": parts,
                "chunks_scored_this_run": parts, "pairs": parts * rows, "prompt_tokens": 40 * parts * rows,
                "truncated_pairs": 0, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    layout.run_info.write_text(json.dumps(run_info, indent=1))
    layout.success.write_text("")


def make(root: str, parts: int, rows: int, processes: int, finished: int | None = None) -> None:
    """Fabricate OUT as a job leaves it after `parts` chunks of `rows` (finished: also run.json, _SUCCESS, qrels)."""
    layout = OutputLayout(root)
    chunks = [Chunk(i, i * rows, rows) for i in range(parts)]
    write_manifest(layout, Manifest({"input.files": [], "fabricated": True}, chunks, parts * rows, None,
                                    queries=parts * max(1, rows // DOCS_PER_QUERY)))
    started = time.perf_counter()
    step = 500
    ledger = PartLedger(layout)
    with ProcessPoolExecutor(processes) as pool:
        batches = [pool.submit(_write_parts, root, first, min(step, parts - first), rows)
                   for first in range(0, parts, step)]
        for batch in batches:  # in chunk order, as a driver would record them (order does not matter)
            for part in batch.result():
                ledger.record(part)
    ledger.flush()
    if finished:
        ledger.compact()  # as a run leaves it at its end
        _finish(root, parts, rows, finished)
    print(f"wrote {parts} parts of {rows} rows in {time.perf_counter() - started:.1f} s under {root}")


def _requests(log: str | None) -> int:
    """Requests moto's server has logged so far (werkzeug writes one line per request)."""
    if log is None:
        return 0
    with open(log, errors="replace") as lines:
        return sum(1 for line in lines if " HTTP/1." in line)


def _timed(command: list[str], log: str | None) -> tuple[float, int, str, int]:
    before = _requests(log)
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, finished.returncode, finished.stdout.strip(), _requests(log) - before


def _resume(root: str, log: str | None) -> dict:
    seconds, code, out, requests = _timed([sys.executable, "-c", _RESUME, root], log)
    if code:
        raise SystemExit(f"the resume check failed (exit {code})")
    return {"process_s": round(seconds, 2), "requests": requests,
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in json.loads(out).items()}}


def _aside(root: str, hide: bool) -> None:
    """Move the ledger away (or back): the resume check without it reads every footer."""
    ledger, hidden = OutputLayout(root).ledger, StoragePath.of(root) / "ledger-hidden"
    source, target = (ledger, hidden) if hide else (hidden, ledger)
    if source.supports_posix_locks:
        shutil.move(str(source), str(target))
        return
    for path, _ in source.list_files(recursive=True):
        target_path = target / path.name
        target_path.write_bytes(path.read_bytes())
        path.unlink()


def _compact(root: str) -> int:
    """What a run does once it has checked the parts: the ledger rewritten as one file. Returns the files before."""
    layout = OutputLayout(root)
    found = find_finished(layout, read_manifest(layout), repair=False)
    found.ledger(layout).compact()
    return len(found.ledger_files)


def _status(root: str, log: str | None, results: dict, label: str) -> None:
    for args in (["status", root], ["status", root, "--json"]):
        seconds, code, out, requests = _timed([BATCHRANK, *args], log)
        results[f"batchrank {' '.join(['status', *args[2:]])} ({label})"] = {
            "process_s": round(seconds, 2), "exit": code, "requests": requests, "out": out.splitlines()[-1][-100:]}


def time_all(root: str, log: str | None, footers: bool) -> dict:
    """Time the resume check and `batchrank status` with the ledger as left, compacted, and (footers) without it."""
    files = len(OutputLayout(root).ledger.list_files(".json", recursive=False))
    label = f"ledger in {files} files"
    results: dict = {f"resume ({label})": _resume(root, log)}
    _status(root, log, results, label)
    if files > 1:
        _compact(root)
        results["resume (ledger compacted)"] = _resume(root, log)
        _status(root, log, results, "ledger compacted")
    if footers:
        _aside(root, hide=True)
        try:
            results["resume (no ledger: every footer)"] = _resume(root, log)
            _status(root, log, results, "no ledger")
        finally:
            _aside(root, hide=False)
    return results


def main(argv: list[str]) -> None:
    """make: fabricate the output; time: time each step and print one line a step."""
    parser = argparse.ArgumentParser(prog="python -m batchrank.bench.resume_bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make")
    made.add_argument("output")
    made.add_argument("--parts", type=int, default=50_000)
    made.add_argument("--rows", type=int, default=20)
    made.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    made.add_argument("--finished", type=int, metavar="N", help="a finished job (run.json, _SUCCESS) and qrels "
                      "judging every N-th query, for eval, export and the report")
    timed = commands.add_parser("time")
    timed.add_argument("output")
    timed.add_argument("--requests", help="moto server's request log: count the requests of each step")
    timed.add_argument("--skip-footers", action="store_true", help="do not time the check without the ledger")
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.output, args.parts, args.rows, args.processes, args.finished)
    else:
        for name, numbers in time_all(args.output, args.requests, not args.skip_footers).items():
            print(f"{name}: {json.dumps(numbers)}")


if __name__ == "__main__":
    main(sys.argv[1:])
