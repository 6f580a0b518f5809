"""Cross-encoders score what sentence-transformers' CrossEncoder.predict scores: the tokenizer's own pair encoding
(token types included), the document cut to fit; through `batchrank run` and the real vLLM CPU engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import demo_pairs, make_pairs, run_pairs

TOLERANCE = 1e-4  # float32 on both sides


def synthetic_pairs() -> list[dict[str, Any]]:
    rows = make_pairs(5, 8, seed=4, doc_words=(3, 40))
    for row in rows[::3]:
        row["passage"] = " ".join([row["passage"]] * 5)
    return [{"query_id": r["qid"], "query": r["query_text"], "doc_id": r["pid"], "document": r["passage"]}
            for r in rows]


def cross_encoder_predict(model: str, rows: list[dict[str, Any]], max_length: int, logit: bool = False) -> np.ndarray:
    """CrossEncoder.predict's scores; `logit`: with the identity activation, the classifier's raw logit."""
    import torch
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(model, device="cpu", max_length=max_length)
    activation = torch.nn.Identity() if logit else None
    return encoder.predict([(row["query"], row["document"]) for row in rows], batch_size=16,
                           activation_fn=activation)


@pytest.fixture(scope="module")
def minilm_runs(minilm_cross_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same pairs with the default format (pair) and with the flat `sep` text, on one engine."""
    rows, root = demo_pairs(), tmp_path_factory.mktemp("minilm-runs")
    model = {"max_model_len": 128}
    pair = run_pairs(root / "pair", minilm_cross_encoder, rows, model=model)
    sep = run_pairs(root / "sep", minilm_cross_encoder, rows, model=model, prompt={"template": "sep"})
    return {"rows": rows, "pair": pair, "sep": sep,
            "expected": cross_encoder_predict(minilm_cross_encoder, rows, max_length=128)}


def test_bert_cross_encoder_scores_equal_crossencoder_predict(minilm_runs: dict[str, Any]) -> None:
    scores, run_info = minilm_runs["pair"]
    expected = minilm_runs["expected"]
    assert np.abs(np.array(scores) - expected).max() <= TOLERANCE
    assert run_info["truncated_pairs"] == 24, "every lengthened document was cut to fit 128 tokens"
    assert np.std(scores) > 0.01, "the model must tell documents apart, or order bugs could hide"
    described = run_info["model"]["input_format"]
    assert described["template"] == "pair"
    assert described["encoding"] == "[CLS] {query} [SEP] {document} [SEP]"
    assert described["token_type_ids"] == "0: [CLS] {query} [SEP]; 1: {document} [SEP]"


def test_the_logit_score_equals_crossencoder_predict_with_the_identity_activation(
        minilm_cross_encoder: str, minilm_runs: dict[str, Any], tmp_path: Path) -> None:
    rows = minilm_runs["rows"]
    scores, run_info = run_pairs(tmp_path, minilm_cross_encoder, rows, model={"max_model_len": 128, "score": "logit"})
    expected = cross_encoder_predict(minilm_cross_encoder, rows, max_length=128, logit=True)
    assert expected.dtype == np.float32
    assert np.abs(np.array(scores) - expected).max() <= TOLERANCE
    probabilities = np.array(minilm_runs["pair"][0])
    assert np.abs(1 / (1 + np.exp(-np.array(scores))) - probabilities).max() < 1e-6, "sigmoid(logit) = the default"
    assert np.array_equal(np.argsort(scores, kind="stable"), np.argsort(probabilities, kind="stable")), "same order"
    assert run_info["model"]["score"] == "logit"
    assert run_info["model"]["input_format"]["score"].startswith("logit: the classifier's raw logit, no sigmoid")


def test_the_flat_sep_text_gives_every_token_segment_0_and_scores_differently(minilm_runs: dict[str, Any]) -> None:
    """The issue-15 input (`{query} [SEP] {document}` as one text): the same ids, every token type 0, so the
    model's type-1 embedding is never used. It stays available, and measurably differs from the model's format."""
    scores, run_info = minilm_runs["sep"]
    difference = np.abs(np.array(scores) - minilm_runs["expected"])
    assert (round(difference.max(), 3), round(difference.mean(), 3)) == (0.124, 0.036), "the figures README quotes"
    assert np.abs(np.array(minilm_runs["pair"][0]) - minilm_runs["expected"]).max() < 1e-6, "pair: 1.8e-7 there"
    described = run_info["model"]["input_format"]
    assert described["template"] == "sep" and described["token_type_ids"] == "none (every token type 0)"
    assert described["encoding"] == "[CLS] {prompt} [SEP]"


def test_xlmr_cross_encoder_scores_equal_crossencoder_predict(xlmr_cross_encoder: str, tmp_path: Path) -> None:
    rows = synthetic_pairs()
    scores, run_info = run_pairs(tmp_path, xlmr_cross_encoder, rows, model={"max_model_len": 64})
    expected = cross_encoder_predict(xlmr_cross_encoder, rows, max_length=64)
    assert np.abs(np.array(scores) - expected).max() <= TOLERANCE
    assert run_info["truncated_pairs"] > 5
    assert np.std(scores) > 0.01
    described = run_info["model"]["input_format"]
    assert described["encoding"] == "<s> {query} </s> </s> {document} </s>"
    assert described["token_type_ids"] == "none (every token type 0)"


def test_several_labels_give_the_last_labels_log_odds_without_saturating() -> None:
    from batchrank.scoring.pair_scorer import last_label_log_odds

    logits = np.array([1.5, -0.5, 2.0])
    probability = np.exp(logits[-1]) / np.exp(logits).sum()
    assert abs(last_label_log_odds(logits) - np.log(probability / (1 - probability))) < 1e-12
    confident = np.array([0.0, 0.0, 60.0])  # its softmax probability is 1.0 even in float64
    assert np.exp(confident[-1]) / np.exp(confident).sum() == 1.0
    assert last_label_log_odds(confident) == pytest.approx(60 - np.log(2), abs=1e-12)


def test_an_embedding_models_score_is_its_similarity_not_a_probability() -> None:
    from batchrank.errors import SpecError
    from batchrank.scoring.kinds import score_type

    assert score_type("embedding", None) == score_type("embedding", "logit") == "similarity"
    assert (score_type("qwen3-yes-no", None), score_type("cross-encoder", "logit")) == ("probability", "logit")
    with pytest.raises(SpecError, match="model.score probability: an embedding model's score is its similarity"):
        score_type("embedding", "probability")
