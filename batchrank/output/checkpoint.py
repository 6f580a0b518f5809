"""The output directory as a checkpoint: which chunks are done, and the ledger that says so cheaply.

A chunk is done when its part is readable and, with the rows its footer says were rejected (whose rejects piece
holds exactly those), accounts for every planned row; anything else is scored again. Opening every part to check
that would cost one read per part on every start (50,000 at a billion pairs), so the driver also records each
finished part in OUTPUT/ledger/ (its size and stats, in batches): on resume one listing of scores/ is matched
against the ledger, and only parts the ledger does not vouch for (written after its last batch, or of another
size) are opened, in parallel.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from batchrank.io import parquet_files
from batchrank.io.parts import PART_STATS_KEY, ChunkStats, PartWritten
from batchrank.output.layout import OutputLayout, chunk_id_of
from batchrank.output.manifest import Manifest
from batchrank.plan import Chunk
from batchrank.storage import StoragePath

LEDGER_BATCH_PARTS = 256
LEDGER_BATCH_SECONDS = 30.0
_VERIFY_THREADS = 16


class PartLedger:
    """Finished parts, recorded by the driver as their workers report them and written in batches."""

    def __init__(self, layout: OutputLayout):
        self.layout = layout
        self._pending: list[PartWritten] = []
        self._last_flush = time.monotonic()

    def record(self, part: PartWritten) -> None:
        self._pending.append(part)
        if len(self._pending) >= LEDGER_BATCH_PARTS or time.monotonic() - self._last_flush > LEDGER_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the parts recorded since the last batch (one small file; a lost batch only costs reads later)."""
        if not self._pending:
            return
        entries = [{"part_bytes": p.part_bytes, "rejects_bytes": p.rejects_bytes, "stats": asdict(p.stats)}
                   for p in self._pending]
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        try:
            (self.layout.ledger / name).write_text(json.dumps(entries))
        except OSError:
            return  # the parts themselves are the checkpoint; a missing batch only means more reads on resume
        self._pending.clear()
        self._last_flush = time.monotonic()


def read_ledger(layout: OutputLayout) -> dict[int, PartWritten]:
    """Every part the ledger records (a later batch wins); unreadable batches are skipped."""
    recorded: dict[int, PartWritten] = {}
    for path, _ in layout.ledger.list_files(".json", recursive=False):
        try:
            for entry in json.loads(path.read_text()):
                stats = ChunkStats(**entry["stats"])
                recorded[stats.chunk_id] = PartWritten(stats, int(entry["part_bytes"]), int(entry["rejects_bytes"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return recorded


def verify_part(layout: OutputLayout, chunk: Chunk) -> PartWritten | None:
    """The part of `chunk` when it exists and accounts for every row of the chunk; None otherwise."""
    path = layout.part(chunk.chunk_id)
    try:
        metadata, _, size = parquet_files.read_footer(path)
        stats = ChunkStats(**json.loads((metadata.metadata or {})[PART_STATS_KEY]))
        rejects_bytes = 0
        if stats.rejected_pairs:
            rejects = layout.chunk_rejects(chunk.chunk_id)
            rejects_metadata, _, rejects_bytes = parquet_files.read_footer(rejects)
            if rejects_metadata.num_rows != stats.rejected_pairs:
                return None
    except Exception:  # noqa: BLE001 - missing or unreadable, whatever the reader raised: not done
        return None
    if metadata.num_rows + stats.rejected_pairs != chunk.num_rows or stats.chunk_id != chunk.chunk_id:
        return None
    return PartWritten(stats, size, rejects_bytes)


def finished_chunks(layout: OutputLayout, manifest: Manifest, repair: bool = True) -> dict[int, PartWritten]:
    """The chunks that are done, by one listing of the parts checked against the ledger; a part neither vouches
    for is opened (in parallel), and with `repair` a damaged one is removed so that it is scored again."""
    listed = _sizes(layout.scores)
    if not listed:
        return {}
    rejects = _sizes(layout.rejects_dir)
    recorded = read_ledger(layout)
    done: dict[int, PartWritten] = {}
    unsure: list[Chunk] = []
    for chunk in manifest.chunks:
        size = listed.get(chunk.chunk_id)
        if size is None:
            continue
        entry = recorded.get(chunk.chunk_id)
        if entry is not None and entry.part_bytes == size and _accounts_for(entry, chunk, rejects):
            done[chunk.chunk_id] = entry
        else:
            unsure.append(chunk)
    with ThreadPoolExecutor(min(_VERIFY_THREADS, max(1, len(unsure)))) as pool:
        for chunk, verified in zip(unsure, pool.map(lambda c: verify_part(layout, c), unsure), strict=True):
            if verified is not None:
                done[chunk.chunk_id] = verified
            elif repair:
                layout.part(chunk.chunk_id).unlink(missing_ok=True)
    return done


def _accounts_for(entry: PartWritten, chunk: Chunk, rejects: dict[int, int]) -> bool:
    stats = entry.stats
    if stats.rejected_pairs and rejects.get(chunk.chunk_id) != entry.rejects_bytes:
        return False
    return stats.pairs + stats.rejected_pairs == chunk.num_rows


def _sizes(directory: StoragePath) -> dict[int, int]:
    found = {}
    for path, size in directory.list_files(".parquet", recursive=False):
        chunk_id = chunk_id_of(path.name)
        if chunk_id is not None:
            found[chunk_id] = size
    return found


def clear(layout: OutputLayout) -> None:
    """Remove what batchrank wrote (for --overwrite and a new plan); other files in the directory are left alone."""
    for directory in layout.result_directories():
        directory.delete_tree()
    for path in layout.results():
        path.unlink(missing_ok=True)


def remove_temporaries(layout: OutputLayout) -> None:
    """Temporary files of a killed run (a part, run.json, rejects being written); never read as results."""
    for directory in layout.temporary_directories():
        directory.remove_temporaries()

