"""Chunks prepared on several threads share engine calls: whoever holds the engine scores every chunk waiting.

A Ray actor prepares its chunks on concurrent calls (reading and tokenizing overlap the engine). One engine call per
chunk drains the engine at each chunk's end; with `run.engine_batch_pairs`, the thread that gets the engine takes
every prepared chunk waiting, up to that many pairs, into one call, as the local executor groups ready chunks.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from batchrank.execute.chunk_io import score_prepared, score_together
from batchrank.scoring.base import PreparedChunk, Scorer


@dataclass
class _Ticket:
    prepared: PreparedChunk
    scores: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class EngineBatcher:
    def __init__(self, scorer: Scorer, pair_limit: int | None):
        self.scorer, self.pair_limit = scorer, pair_limit
        self.engine = threading.Lock()
        self.guard = threading.Lock()  # the waiting queue
        self.waiting: deque[_Ticket] = deque()

    def score(self, prepared: PreparedChunk) -> np.ndarray:
        """This chunk's scores, from an engine call of its own or one it shares with other waiting chunks."""
        ticket = _Ticket(prepared)
        with self.guard:
            self.waiting.append(ticket)
        while not ticket.done:
            with self.engine:
                if not ticket.done:
                    self._serve(self._take_group())
        if ticket.error is not None:
            raise ticket.error
        assert ticket.scores is not None
        return ticket.scores

    def _take_group(self) -> list[_Ticket]:
        """The oldest waiting chunk, and those after it that fit the pair limit (FIFO: nobody waits for ever)."""
        with self.guard:
            group = [self.waiting.popleft()]
            pairs = group[0].prepared.num_pairs
            while self.pair_limit and self.waiting and pairs + self.waiting[0].prepared.num_pairs <= self.pair_limit:
                pairs += self.waiting[0].prepared.num_pairs
                group.append(self.waiting.popleft())
        return group

    def _serve(self, group: list[_Ticket]) -> None:
        together = score_together(self.scorer, [t.prepared for t in group])
        if together is not None:
            for ticket, scores in zip(group, together, strict=True):
                ticket.scores, ticket.done = scores, True
            return
        for ticket in group:
            try:
                ticket.scores = score_prepared(self.scorer, ticket.prepared)
            except Exception as error:  # noqa: BLE001 - handed to the chunk's own call, which reports it
                ticket.error = error
            ticket.done = True
