"""Each model kind scores as the library its users trust, on the GPU build: the Qwen3-Reranker model card's formula
(qwen3-yes-no), sentence-transformers' CrossEncoder.predict (cross-encoder) and SentenceTransformer.encode + cosine
(embedding); float32 to the CPU suite's 1e-4, bfloat16 within BF16_TOLERANCE of the float32 reference. One local
engine each: these tests are about the kinds; the executors are test_operations_gpu.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_embedding_scorer import encode_and_cosine
from test_pair_scorer import cross_encoder_predict, synthetic_pairs

from batchrank.scoring.reference import qwen3_model_card_scores
from conftest import TINY_MAX_MODEL_LEN, run_pairs

F32_TOLERANCE = 1e-4
# bf16 keeps 8 bits of mantissa: a probability or a cosine moves by up to ~1e-2 on these random models (the bound
# is to be confirmed on the H200: docs/gpu-suite.md); a wrong format or truncation moves scores by 0.1 and more.
BF16_TOLERANCE = 3e-2
LOCAL = {"executor": "local"}  # run.executor auto would start Ray for two engines on a GPU


def tolerance(dtype: str) -> float:
    return F32_TOLERANCE if dtype == "float32" else BF16_TOLERANCE


def check(scores: list[float], expected: np.ndarray, dtype: str) -> None:
    difference = np.abs(np.array(scores) - expected)
    assert difference.max() <= tolerance(dtype), f"{dtype}: max |difference| {difference.max():.2e}"
    assert np.std(scores) > 0.01, "the model must tell documents apart, or order bugs could hide"


def qwen3_rows() -> list[dict[str, Any]]:
    rows = synthetic_pairs()
    for row in rows[::4]:  # beyond max_model_len: the document side is cut, as the card cuts it
        row["document"] = " ".join([row["document"]] * 30)
    return rows


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_qwen3_yes_no_scores_equal_the_model_card(gpu_models: dict[str, str], dtypes: list[str], dtype: str,
                                                  tmp_path: Path) -> None:
    if dtype not in dtypes:
        pytest.skip(f"{dtype} is not run on this device")
    rows = qwen3_rows()
    scores, run_info = run_pairs(tmp_path, gpu_models["qwen3-yes-no"], rows, run=LOCAL,
                                 model={"dtype": dtype, "max_model_len": TINY_MAX_MODEL_LEN})
    expected = qwen3_model_card_scores(gpu_models["qwen3-yes-no"], [(r["query"], r["document"]) for r in rows],
                                       None, TINY_MAX_MODEL_LEN)
    check(scores, expected, dtype)
    assert run_info["truncated_pairs"] >= len(rows[::4]), "every lengthened document was cut"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cross_encoder_scores_equal_crossencoder_predict(gpu_models: dict[str, str], dtypes: list[str], dtype: str,
                                                         tmp_path: Path) -> None:
    if dtype not in dtypes:
        pytest.skip(f"{dtype} is not run on this device")
    rows = synthetic_pairs()
    scores, run_info = run_pairs(tmp_path, gpu_models["cross-encoder"], rows, run=LOCAL,
                                 model={"dtype": dtype, "max_model_len": 64})
    check(scores, cross_encoder_predict(gpu_models["cross-encoder"], rows, max_length=64), dtype)
    assert run_info["truncated_pairs"] > 5


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_embedding_scores_equal_sentence_transformers(gpu_models: dict[str, str], dtypes: list[str], dtype: str,
                                                      tmp_path: Path) -> None:
    if dtype not in dtypes:
        pytest.skip(f"{dtype} is not run on this device")
    rows = synthetic_pairs()
    for row in rows[::3]:  # beyond the model's 256 tokens
        row["document"] = " ".join([row["document"]] * 20)
    prompt = {"query_prefix": "query: ", "document_prefix": "passage: "}
    scores, run_info = run_pairs(tmp_path, gpu_models["embedding"], rows, run=LOCAL, model={"dtype": dtype},
                                 prompt=prompt)
    check(scores, encode_and_cosine(gpu_models["embedding"], rows, "query: ", "passage: "), dtype)
    assert run_info["truncated_pairs"] == len(rows[::3])


def test_qwen3_yes_no_logit_is_the_cards_yes_no_margin(gpu_models: dict[str, str], tmp_path: Path) -> None:
    """model.score logit (issue 23) on the GPU build: the card's float32 yes-no margin, the same order."""
    rows = qwen3_rows()
    model = {"dtype": "float32", "max_model_len": TINY_MAX_MODEL_LEN, "score": "logit"}
    scores, run_info = run_pairs(tmp_path, gpu_models["qwen3-yes-no"], rows, model=model)
    expected = qwen3_model_card_scores(gpu_models["qwen3-yes-no"], [(r["query"], r["document"]) for r in rows],
                                       None, TINY_MAX_MODEL_LEN, score="logit")
    assert (np.abs(np.array(scores) - expected) <= F32_TOLERANCE * np.maximum(1.0, np.abs(expected))).all()
    assert run_info["model"]["score"] == "logit"
