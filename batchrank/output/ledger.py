"""OUTPUT/ledger/: the finished parts as the driver recorded them, so that finding what is done needs no part opened.

Each entry names a part's chunk, its stats (the footer's), and the size and modification time of the part file as
its storage reported them once the part was in place. An entry vouches for a part only while a listing of scores/
shows that same size and time (checkpoint.find_finished): a part rewritten, cut short or replaced since is opened
and checked instead, so a wrong or stale entry costs a read, never a chunk counted done that is not.

The driver writes entries in batches (every LEDGER_BATCH_PARTS parts or LEDGER_BATCH_SECONDS), each batch one small
file written atomically; every MAX_LEDGER_FILES batches are merged into one file. The whole ledger is compacted
into one file when a run starts (after the parts are checked) and when it ends, so that reading it costs a few
reads (requests, in a store) whatever the number of parts: one file after a run, and after a kill one file per
16,384 parts of that run plus at most 64 batches. A lost or damaged file only means more parts to open.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from batchrank.io.parts import ChunkStats, PartWritten
from batchrank.output.layout import OutputLayout
from batchrank.storage import StoragePath

log = logging.getLogger("batchrank")

LEDGER_VERSION = 1
LEDGER_BATCH_PARTS = 256
LEDGER_BATCH_SECONDS = 30.0
MAX_LEDGER_FILES = 64
_READ_THREADS = 16


def _entry(part: PartWritten) -> dict[str, Any]:
    return {"part_bytes": part.part_bytes, "part_mtime_ns": part.part_mtime_ns, "rejects_bytes": part.rejects_bytes,
            "stats": asdict(part.stats)}


def _part(entry: dict[str, Any]) -> PartWritten:
    return PartWritten(ChunkStats(**entry["stats"]), int(entry["part_bytes"]), int(entry["rejects_bytes"]),
                       int(entry["part_mtime_ns"]))


def _read_file(path: StoragePath) -> list[PartWritten] | None:
    """The entries of one ledger file; None when it is unreadable (each damaged entry is skipped alone)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION or not isinstance(data.get("parts"), list):
        return None
    parts = []
    for entry in data["parts"]:
        try:
            parts.append(_part(entry))
        except (KeyError, TypeError, ValueError):
            continue
    return parts


def read_ledger(layout: OutputLayout) -> tuple[dict[int, PartWritten], list[StoragePath]]:
    """Every part the ledger records (a later file wins), and the ledger files that were read; unreadable files
    are skipped. The files are read in parallel: in a store each is a request or two."""
    files = [path for path, _ in layout.ledger.list_files(".json", recursive=False)]
    recorded: dict[int, PartWritten] = {}
    if not files:
        return recorded, files
    with ThreadPoolExecutor(min(_READ_THREADS, len(files))) as pool:
        for parts in pool.map(_read_file, files):  # in name order: time of writing
            for part in parts or ():
                recorded[part.stats.chunk_id] = part
    return recorded, files


class PartLedger:
    """Finished parts, recorded by the driver as their workers report them and written in batches.

    `known`: the parts found done when the run started, and `files` the ledger files they came from, so that a
    compaction writes every finished part into one file and removes the files it replaces. While the run goes on,
    batches are merged MAX_LEDGER_FILES at a time into one file of their own parts (not of every part: rewriting
    the whole ledger of 500,000 parts would stall the dispatch for seconds each time)."""

    def __init__(self, layout: OutputLayout, known: dict[int, PartWritten] | None = None,
                 files: list[StoragePath] | None = None):
        self.layout = layout
        self.known: dict[int, PartWritten] = dict(known or {})
        self._kept: list[StoragePath] = list(files or [])  # compacted or merged files
        self._batches: list[StoragePath] = []  # batches of this run since the last merge
        self._batched: list[PartWritten] = []  # their parts
        self._pending: list[PartWritten] = []
        self._last_flush = time.monotonic()

    @property
    def files(self) -> list[StoragePath]:
        return [*self._kept, *self._batches]

    def record(self, part: PartWritten) -> None:
        self.known[part.stats.chunk_id] = part
        self._pending.append(part)
        if len(self._pending) >= LEDGER_BATCH_PARTS or time.monotonic() - self._last_flush > LEDGER_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the parts recorded since the last batch (one small file; a lost batch only costs reads later)."""
        if not self._pending:
            return
        path = self._write(self._pending)
        if path is None:
            return  # kept pending: the next batch tries again
        self._batched += self._pending
        self._pending = []
        self._last_flush = time.monotonic()
        self._batches.append(path)
        if len(self._batches) >= MAX_LEDGER_FILES:
            self._merge_batches()

    def compact(self) -> None:
        """Every known part in one file; the files it replaces are removed once it is in place (a kill between
        leaves both, which read the same)."""
        path = self._write(list(self.known.values()))
        if path is None:
            return
        self._remove(self.files)
        self._kept, self._batches, self._batched, self._pending = [path], [], [], []
        self._last_flush = time.monotonic()

    def _merge_batches(self) -> None:
        path = self._write(self._batched)
        if path is None:
            return
        self._remove(self._batches)
        self._kept.append(path)
        self._batches, self._batched = [], []

    @staticmethod
    def _remove(paths: list[StoragePath]) -> None:
        for old in paths:
            try:
                old.unlink(missing_ok=True)
            except OSError as error:
                log.debug("ledger file %s not removed: %s", old, error)

    def _write(self, parts: list[PartWritten]) -> StoragePath | None:
        # Names sort by time of writing, so a later file (a compaction or a merge included) wins over earlier ones.
        path = self.layout.ledger / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        text = json.dumps({"version": LEDGER_VERSION, "parts": [_entry(part) for part in parts]},
                          separators=(",", ":"))
        try:
            path.write_text(text)
        except OSError as error:
            # The parts themselves are the checkpoint; a missing batch only means more reads on resume.
            log.debug("ledger batch %s not written: %s", path, error)
            return None
        return path
