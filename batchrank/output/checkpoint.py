"""The output directory as a checkpoint: which chunks are done.

A chunk is done when its part is readable and, with the rows its footer says were rejected (whose rejects piece
holds exactly those), accounts for every planned row; anything else is scored again. Opening every part to check
that would cost one read per part on every start (50,000 at a billion pairs; three requests each in a store), so
the driver records each finished part in OUTPUT/ledger/ (ledger.py): on resume one listing of scores/ (a few
pages in a store) is matched against the ledger by each part's size and modification time, and only the parts the
ledger does not vouch for (written after its last batch, rewritten, cut short) are opened, in parallel.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from batchrank.io import parquet_files
from batchrank.io.parts import PART_STATS_KEY, ChunkStats, PartWritten
from batchrank.output.layout import OutputLayout, chunk_id_of
from batchrank.output.ledger import PartLedger, read_ledger
from batchrank.output.manifest import Manifest
from batchrank.plan import Chunk
from batchrank.storage import FileInfo, StoragePath

__all__ = ["FoundParts", "PartLedger", "clear", "find_finished", "finished_chunks", "remove_temporaries",
           "verify_part"]

_VERIFY_THREADS = 16


@dataclass
class FoundParts:
    """What a check of the output found: the chunks that are done, and how it knew."""

    done: dict[int, PartWritten]
    ledger_files: list[StoragePath] = field(default_factory=list)  # the ledger files read
    opened: int = 0  # parts the ledger did not vouch for, checked by reading their footer
    removed: int = 0  # damaged parts removed (with repair), to be scored again

    def ledger(self, layout: OutputLayout) -> PartLedger:
        """The ledger a run continues: every part found done, and the files to replace when it is compacted."""
        return PartLedger(layout, self.done, self.ledger_files)

    @property
    def ledger_is_compact(self) -> bool:
        """Whether the ledger already holds every part found, in one file (nothing to gain from a compaction)."""
        return self.opened == 0 and len(self.ledger_files) <= 1


def verify_part(layout: OutputLayout, chunk: Chunk, listed: FileInfo | None = None) -> PartWritten | None:
    """The part of `chunk` when it exists and accounts for every row of the chunk; None otherwise. `listed`: the
    part's size and time from a listing (else they are asked for)."""
    path = layout.part(chunk.chunk_id)
    try:
        info = listed if listed is not None else path.info()
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
    if stats.pairs != metadata.num_rows or not _accounts_for(stats, chunk):
        return None
    return PartWritten(stats, size, rejects_bytes, info.mtime_ns)


def _accounts_for(stats: ChunkStats, chunk: Chunk) -> bool:
    """Whether a part's stats are of this chunk and, with its rejected rows, cover every one of its rows."""
    return stats.chunk_id == chunk.chunk_id and stats.pairs + stats.rejected_pairs == chunk.num_rows


def find_finished(layout: OutputLayout, manifest: Manifest, repair: bool = True) -> FoundParts:
    """The chunks that are done, by one listing of the parts checked against the ledger; a part the ledger does
    not vouch for is opened (in parallel), and with `repair` a damaged one is removed so that it is scored again.
    Without `repair` nothing is written (what `batchrank status` needs while a run goes on)."""
    listed = _listing(layout.scores)
    if not listed:
        return FoundParts({})
    rejects = {chunk_id: info.size for chunk_id, info in _listing(layout.rejects_dir).items()}
    recorded, files = read_ledger(layout)
    resolution = layout.scores.mtime_resolution_ns
    found = FoundParts({}, files)
    unsure: list[Chunk] = []
    for chunk in manifest.chunks:
        info = listed.get(chunk.chunk_id)
        if info is None:
            continue
        entry = recorded.get(chunk.chunk_id)
        if entry is not None and _vouches(entry, chunk, info, rejects, resolution):
            found.done[chunk.chunk_id] = entry
        else:
            unsure.append(chunk)
    found.opened = len(unsure)
    if not unsure:
        return found
    with ThreadPoolExecutor(min(_VERIFY_THREADS, len(unsure))) as pool:
        checked = pool.map(lambda c: verify_part(layout, c, listed[c.chunk_id]), unsure)
        for chunk, verified in zip(unsure, checked, strict=True):
            if verified is not None:
                found.done[chunk.chunk_id] = verified
            elif repair:
                layout.part(chunk.chunk_id).unlink(missing_ok=True)
                found.removed += 1
    return found


def finished_chunks(layout: OutputLayout, manifest: Manifest, repair: bool = True) -> dict[int, PartWritten]:
    """find_finished's chunks that are done."""
    return find_finished(layout, manifest, repair).done


def _vouches(entry: PartWritten, chunk: Chunk, listed: FileInfo, rejects: dict[int, int], resolution: int) -> bool:
    """Whether a ledger entry speaks for the part listed now: the same file (size and time) and a chunk it
    accounts for whole. Anything else is opened."""
    if entry.part_bytes != listed.size or not entry.part_mtime_ns:
        return False
    if abs(entry.part_mtime_ns - listed.mtime_ns) >= resolution:
        return False
    if not _accounts_for(entry.stats, chunk):
        return False
    return not entry.stats.rejected_pairs or rejects.get(chunk.chunk_id) == entry.rejects_bytes


def _listing(directory: StoragePath) -> dict[int, FileInfo]:
    found = {}
    for name, info in directory.list_names(".parquet"):
        chunk_id = chunk_id_of(name)
        if chunk_id is not None:
            found[chunk_id] = info
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

