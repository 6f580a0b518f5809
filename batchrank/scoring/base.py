"""The scorer interface, and the model kinds it serves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from batchrank.errors import SpecError
from batchrank.spec import ModelKind, ModelSpec


@dataclass
class PreparedChunk:
    """A chunk rendered and tokenized, ready for the engine (built ahead, off the engine's thread)."""

    num_pairs: int
    prompt_tokens: int
    truncated_pairs: int
    payload: Any  # what the scorer's engine call needs; only the scorer that made it reads it
    too_long_rows: list[int] = field(default_factory=list)


class Scorer(Protocol):
    kind: ModelKind

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        """Render and tokenize the pairs (columns query_id, query, doc_id, document)."""

    def score(self, prepared: PreparedChunk) -> np.ndarray:
        """One float score per pair, in the order of the frame given to `prepare`."""


def detect_model_kind(model: ModelSpec) -> ModelKind:
    """model.kind when set; else from config.json: a causal LM is a yes/no reranker, a classifier a cross-encoder."""
    if model.kind:
        return model.kind
    root = Path(model.path)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise SpecError(f"model.path {model.path}: no config.json there; model.path must be a local model directory")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as error:
        raise SpecError(f"{config_path}: not valid JSON ({error})") from None
    architectures = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross-encoder"
    if any(a.endswith("ForCausalLM") for a in architectures):
        if config.get("model_type") != "qwen3":
            raise SpecError(
                f"model.path {model.path}: a {config.get('model_type')} causal LM; set model.kind explicitly "
                "(qwen3-yes-no scores P(yes) with the Qwen3-Reranker format)"
            )
        return "qwen3-yes-no"
    if (root / "modules.json").is_file() or any(a.endswith("Model") for a in architectures):
        return "embedding"
    raise SpecError(
        f"model.path {model.path}: cannot tell the model kind from architectures {architectures}; set model.kind"
    )


def default_template(kind: ModelKind) -> str | None:
    return {"qwen3-yes-no": "qwen3", "cross-encoder": "sep", "embedding": None}[kind]


def order_for_engine(query_positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Pairs of one query together (their prompt prefix is cached once), shorter documents first inside it."""
    return np.lexsort((lengths, query_positions))
