"""Scoring a (query, document) pair in one prompt: Qwen3-Reranker's P(yes), or a cross-encoder's label probability;
or, with model.score logit, the raw margin before that activation (yes-no logit, the classifier's logit).

The prompt's token ids are built here (a text template by prompts.PromptEncoder, or a cross-encoder tokenizer's own
pair encoding by pair_encoding.PairEncoder, truncating the document side only), so the engine scores exactly the
ids the model card prescribes; a pair encoding's token types go with them (where the document segment starts). A
chunk's pairs go to the engine grouped by query and shortest first (a shared prefix is cached once, batches stay
dense).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from batchrank.pair_encoding import PairEncoder
from batchrank.prompts import PromptEncoder
from batchrank.scoring.base import PreparedChunk, order_for_engine
from batchrank.scoring.in_engine import ChunkInEngine
from batchrank.scoring.requests import EngineRequests, EngineScorer
from batchrank.spec import ModelKind


@dataclass
class _PairPayload:
    token_ids: list[list[int]]  # in engine order
    order: np.ndarray  # engine position -> chunk row
    token_type_starts: list[int] | None  # in engine order; None: every token type 0


class PairScorer(EngineScorer):
    """Implements scoring.base.Scorer for the qwen3-yes-no and cross-encoder kinds."""

    def __init__(self, kind: ModelKind, encoder: PromptEncoder | PairEncoder, requests: EngineRequests,
                 description: dict[str, Any], logit: bool = False):
        super().__init__(requests, description)
        self.kind, self.encoder, self.logit = kind, encoder, logit

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        queries, documents = pairs["query"].to_list(), pairs["document"].to_list()
        encoded = self.encoder.encode(queries, documents)
        query_positions = pairs["query_id"].rank("dense").to_numpy()
        lengths = np.array([len(ids) for ids in encoded.token_ids])
        order = order_for_engine(query_positions, lengths)
        token_ids = [encoded.token_ids[i] for i in order]
        starts = encoded.token_type_starts
        payload = _PairPayload(token_ids, order, None if starts is None else [starts[i] for i in order])
        return PreparedChunk(len(queries), encoded.num_tokens, int(encoded.truncated.sum()), payload,
                             too_long_rows=encoded.too_long)

    def submit(self, chunk: ChunkInEngine, prepared: PreparedChunk) -> None:
        payload: _PairPayload = prepared.payload
        order = payload.order

        def finish(values: list[float]) -> np.ndarray:
            scores = np.empty(len(values), dtype=np.float64)
            scores[order] = values  # back from engine order to the chunk's row order
            return scores

        self.submit_requests(chunk, payload.token_ids, finish, payload.token_type_starts)

    def value_of(self, output: Any) -> float:
        # Qwen3 yes/no: one value, P(yes) or the yes-no logit (vLLM folds the two token rows into one). A classifier:
        # the last label's probability, or its raw logits (the engine's pooler runs without its activation).
        if not self.logit or len(output) == 1:
            return float(output[-1])
        return last_label_log_odds(np.asarray(output, dtype=np.float64))


def last_label_log_odds(logits: np.ndarray) -> float:
    """log(p / (1 - p)) of the last label's softmax probability p, from the logits without forming p (which
    saturates): the last logit minus the logsumexp of the others."""
    others = logits[:-1]
    peak = others.max()
    return float(logits[-1] - (peak + np.log(np.exp(others - peak).sum())))
