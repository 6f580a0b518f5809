"""Scoring a pair with a bi-encoder: the model's similarity of the query's and the document's embeddings.

Each distinct query of a chunk is embedded once. The texts (with their prefixes) are tokenized here
(embedding_inputs.TextEncoder); the engine pools them as the model's sentence-transformers config says (st_config);
the score is that config's similarity function, cosine unless it names another, as `SentenceTransformer.similarity`
computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from batchrank.embedding_inputs import TextEncoder
from batchrank.scoring.base import PreparedChunk
from batchrank.scoring.in_engine import ChunkInEngine
from batchrank.scoring.requests import EngineRequests, EngineScorer


def similarity(name: str, queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Row-wise similarity of two matrices of embeddings, as sentence-transformers defines it (distances
    negated, so that higher is more similar)."""
    if name == "cosine":
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        documents = documents / np.linalg.norm(documents, axis=1, keepdims=True)
    if name in ("cosine", "dot"):
        return np.einsum("ij,ij->i", queries, documents)
    if name == "euclidean":
        return -np.linalg.norm(queries - documents, axis=1)
    if name == "manhattan":
        return -np.abs(queries - documents).sum(axis=1)
    raise ValueError(f"unknown similarity {name!r}")


@dataclass
class _EmbeddingPayload:
    token_ids: list[list[int]]  # the distinct queries, then the documents
    queries: int
    query_of_pair: np.ndarray  # chunk row -> index of its query


class EmbeddingScorer(EngineScorer):
    """Implements scoring.base.Scorer for the embedding kind."""

    kind = "embedding"

    def __init__(self, encoder: TextEncoder, similarity_name: str, requests: EngineRequests,
                 description: dict[str, Any]):
        super().__init__(requests, description)
        self.encoder, self.similarity_name = encoder, similarity_name

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        queries, documents = pairs["query"].to_list(), pairs["document"].to_list()
        unique = list(dict.fromkeys(queries))
        position = {q: i for i, q in enumerate(unique)}
        query_tokens = self.encoder.encode_queries(unique)
        doc_tokens = self.encoder.encode_documents(documents)
        too_long = set(query_tokens.too_long)
        payload = _EmbeddingPayload(query_tokens.token_ids + doc_tokens.token_ids, len(unique),
                                    np.array([position[q] for q in queries]))
        tokens = query_tokens.num_tokens + doc_tokens.num_tokens
        return PreparedChunk(len(queries), tokens, int(doc_tokens.truncated.sum()), payload,
                             too_long_rows=[i for i, q in enumerate(queries) if position[q] in too_long])

    def submit(self, chunk: ChunkInEngine, prepared: PreparedChunk) -> None:
        payload: _EmbeddingPayload = prepared.payload

        def finish(vectors: list[Any]) -> np.ndarray:
            matrix = np.stack([np.asarray(vector, dtype=np.float64) for vector in vectors])
            queries, documents = matrix[: payload.queries], matrix[payload.queries :]
            return similarity(self.similarity_name, queries[payload.query_of_pair], documents)

        self.submit_requests(chunk, payload.token_ids, finish)
