"""Cut the pairs into chunks of whole queries: the unit of work, checkpoint and output.

A chunk is a contiguous run of rows of whole queries (a query larger than `chunk_size` is one chunk of its own), so
ranks are computed inside a part and each query's prompt prefix is shared inside one engine call. Inputs whose
queries are not contiguous are first staged as a copy grouped by query (staging.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    start: int  # first row in the planned row order (of the input, or of its staged copy)
    num_rows: int

    @property
    def rows(self) -> str:
        return f"rows {self.start}..{self.start + self.num_rows - 1}"


def cut_chunks(query_sizes: list[int], chunk_size: int) -> list[Chunk]:
    """Pack whole queries greedily into chunks of at most `chunk_size` rows (a bigger query stands alone)."""
    chunks: list[Chunk] = []
    start, rows = 0, 0
    for size in query_sizes:
        if rows and rows + size > chunk_size:
            chunks.append(Chunk(len(chunks), start, rows))
            start, rows = start + rows, 0
        rows += size
    if rows:
        chunks.append(Chunk(len(chunks), start, rows))
    return chunks
