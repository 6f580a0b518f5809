"""Scoring a pair with a bi-encoder: the cosine of the query's and the document's embeddings.

Each distinct query of a chunk is embedded once; the query side takes the instruction in the Qwen3-Embedding format
when one is given (prompts.embedding_query_text). Each side is truncated at its end to fit max_model_len.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from batchrank.prompts import PromptEncoder, embedding_query_text
from batchrank.scoring.base import PreparedChunk
from batchrank.scoring.requests import ChunkRequests, EngineRequests


@dataclass
class _EmbeddingPayload:
    token_ids: list[list[int]]  # the distinct queries, then the documents
    queries: int
    query_of_pair: np.ndarray  # chunk row -> index of its query


class EmbeddingScorer:
    """Implements scoring.base.Scorer for the embedding kind."""

    kind = "embedding"

    def __init__(self, encoder: PromptEncoder, instruction: str | None, requests: EngineRequests,
                 description: dict[str, Any]):
        self.encoder, self.instruction, self.requests = encoder, instruction, requests
        self.description = description
        self.chunks = ChunkRequests()

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        queries, documents = pairs["query"].to_list(), pairs["document"].to_list()
        unique = list(dict.fromkeys(queries))
        position = {q: i for i, q in enumerate(unique)}
        query_tokens = self.encoder.encode_texts([embedding_query_text(q, self.instruction) for q in unique])
        doc_tokens = self.encoder.encode_texts(documents)
        payload = _EmbeddingPayload(query_tokens.token_ids + doc_tokens.token_ids, len(unique),
                                    np.array([position[q] for q in queries]))
        tokens = query_tokens.num_tokens + doc_tokens.num_tokens
        return PreparedChunk(len(queries), tokens, int(doc_tokens.truncated.sum()), payload)

    def submit(self, key: int, prepared: PreparedChunk) -> None:
        payload: _EmbeddingPayload = prepared.payload

        def finish(vectors: list[list[float]]) -> np.ndarray:
            matrix = np.stack([np.asarray(vector, dtype=np.float64) for vector in vectors])
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            queries, documents = matrix[: payload.queries], matrix[payload.queries :]
            return np.einsum("ij,ij->i", queries[payload.query_of_pair], documents)

        self.chunks.open(key, len(payload.token_ids), finish)
        ids = [ChunkRequests.request_id(key, position) for position in range(len(payload.token_ids))]
        self.requests.add_many(ids, payload.token_ids)

    def step(self) -> list[tuple[int, np.ndarray | BaseException]]:
        return self.chunks.collect(self.requests.step())

    def has_unfinished(self) -> bool:
        return self.chunks.has_open()

    def describe(self) -> dict[str, Any]:
        return {**self.description, **self.requests.describe()}

    def close(self) -> None:
        self.requests.close()
