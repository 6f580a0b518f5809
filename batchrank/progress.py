"""Progress of a job: a bar on a terminal, one log line per chunk otherwise; one pairs/s figure for both.

The rate is pairs scored by this run over the time since scoring started (every engine up) to the last finished
chunk: the bar shows it as it goes (tqdm without smoothing), and run.json and the summary keep the final value.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import Any

log = logging.getLogger("batchrank")


class Progress:
    def __init__(self, total_rows: int, done_rows: int, total_chunks: int, done_chunks: int, quiet: bool = False):
        self.total_rows, self.total_chunks = total_rows, total_chunks
        self.done_rows, self.done_chunks = done_rows, done_chunks
        self.pairs_this_run = 0
        self.quiet = quiet
        self.started = self.last_chunk_at = time.perf_counter()
        self.bar: Any = None

    def start_scoring(self) -> None:
        """Throughput counts from here (after the engines have started)."""
        self.started = self.last_chunk_at = time.perf_counter()
        if sys.stderr.isatty() and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_rows, initial=self.done_rows, unit="pair", unit_scale=True,
                            dynamic_ncols=True, smoothing=0)

    def chunk_done(self, chunk_id: int, rows: int, pairs: int) -> None:
        """Chunk `chunk_id`, of `rows` rows, is finished, `pairs` of them scored (the rest rejected while preparing)."""
        self.done_rows += rows
        self.done_chunks += 1
        self.pairs_this_run += pairs
        self.last_chunk_at = time.perf_counter()
        if self.bar is not None:
            self.bar.update(rows)
            return
        rate = self.pairs_per_second
        remaining = (self.total_rows - self.done_rows) / rate if rate else 0.0
        # "chunk N" is always a chunk's id, as in "chunk N failed"; the counts say "of" (chunks finish out of order).
        log.info("chunk %d done: %d of %d chunks, %d of %d pairs, %.1f pairs/s, ETA %s", chunk_id, self.done_chunks,
                 self.total_chunks, self.done_rows, self.total_rows, rate, timedelta(seconds=round(remaining)))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def pairs_per_second(self) -> float:
        """Pairs over the time from engine start to the last finished chunk (shutdown is not scoring)."""
        busy = self.last_chunk_at - self.started
        return self.pairs_this_run / busy if busy > 0 else 0.0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
