"""The model kinds batchrank scores, how each is detected from a model directory, and its default template."""

from __future__ import annotations

from typing import Literal

from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory
from batchrank.spec import ModelKind, ModelSpec, ScoreChoice

ScoreType = Literal["probability", "logit", "similarity"]


def detect_model_kind(model: ModelSpec, directory: ModelDirectory) -> ModelKind:
    """model.kind when set; else from config.json: a causal LM is a yes/no reranker, a classifier a cross-encoder,
    a sentence-transformers model (or a bare encoder) an embedding model."""
    if model.kind:
        return model.kind
    architectures = directory.architectures
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross-encoder"
    if any(a.endswith("ForCausalLM") for a in architectures):
        if directory.config.get("model_type") != "qwen3":
            raise SpecError(
                f"model.path {model.path}: a {directory.config.get('model_type')} causal LM; set model.kind "
                "explicitly (qwen3-yes-no scores P(yes) with the Qwen3-Reranker format)"
            )
        return "qwen3-yes-no"
    if directory.is_sentence_transformer() or any(a.endswith("Model") for a in architectures):
        return "embedding"
    raise SpecError(
        f"model.path {model.path}: cannot tell the model kind from architectures {architectures}; set model.kind"
    )


def default_template(kind: ModelKind) -> str | None:
    """qwen3 for the Qwen3-Reranker format; pair (the tokenizer's own pair encoding) for cross-encoders; none for
    embedding models, which embed query and document apart."""
    return {"qwen3-yes-no": "qwen3", "cross-encoder": "pair", "embedding": None}[kind]


def score_type(kind: ModelKind, choice: ScoreChoice | None) -> ScoreType:
    """What the output's score column holds: model.score for the pair kinds (probability unless set), the
    similarity for an embedding model (it has no probability; its similarity is already its raw score)."""
    if kind == "embedding":
        if choice == "probability":
            raise SpecError("model.score probability: an embedding model's score is its similarity, not a "
                            "probability; remove model.score (logit, the raw score, gives the same similarity)")
        return "similarity"
    return choice or "probability"
