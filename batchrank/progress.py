"""Progress of a job: a bar with pairs/s and ETA on a terminal, one log line per chunk otherwise."""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

log = logging.getLogger("batchrank")


class Progress:
    def __init__(self, total_pairs: int, done_pairs: int, total_chunks: int, done_chunks: int):
        self.total_pairs, self.total_chunks = total_pairs, total_chunks
        self.done_pairs, self.done_chunks = done_pairs, done_chunks
        self.pairs_this_run = 0
        self.started = self.last_chunk_at = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_pairs, initial=done_pairs, unit="pair", unit_scale=True, dynamic_ncols=True)

    def restart_clock(self) -> None:
        """Throughput counts from here (after the engine has started)."""
        self.started = self.last_chunk_at = time.perf_counter()

    def chunk_done(self, pairs: int) -> None:
        self.done_pairs += pairs
        self.done_chunks += 1
        self.pairs_this_run += pairs
        self.last_chunk_at = time.perf_counter()
        if self.bar is not None:
            self.bar.update(pairs)
            return
        rate = self.pairs_per_second
        remaining = (self.total_pairs - self.done_pairs) / rate if rate else 0.0
        log.info(
            "chunk %d/%d done, %d/%d pairs, %.1f pairs/s, ETA %s",
            self.done_chunks,
            self.total_chunks,
            self.done_pairs,
            self.total_pairs,
            rate,
            timedelta(seconds=round(remaining)),
        )

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
