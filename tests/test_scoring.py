"""vLLM scores equal the model card's formula computed in plain transformers on the same weights (qwen3-yes-no),
through the scorer factory and the engine loop the pipeline uses."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from batchrank.pipeline.score import EngineLoop
from batchrank.prompts import parse_template, render_prompt
from batchrank.scoring.base import EnginePlacement, Scorer
from batchrank.scoring.factory import VllmScorerFactory
from batchrank.scoring.reference import qwen3_model_card_scores, text_yes_no_scores
from batchrank.spec import JobSpec
from conftest import TINY_MAX_MODEL_LEN, make_pairs

TOLERANCE = 1e-4  # float32 on both sides


def tiny_spec(model: str, template: str | None, instruction: str | None) -> JobSpec:
    return JobSpec.model_validate(
        {
            "input": {"path": "unused.parquet"},
            "model": {"path": model, "dtype": "float32", "max_model_len": TINY_MAX_MODEL_LEN},
            "prompt": {"template": template, "instruction": instruction},
            "output": {"path": "unused"},
        }
    )


def create_scorer(spec: JobSpec) -> Scorer:
    # keep_engine: the engine for these settings serves every test of the session that uses them
    return VllmScorerFactory(keep_engine=True).create(spec, EnginePlacement())


def score(scorer: Scorer, pairs: pl.DataFrame) -> np.ndarray:
    """Prepare the pairs and score them on the engine's own thread, as the pipeline does."""
    loop = EngineLoop(scorer, name="test")
    try:
        return loop.submit(scorer.prepare(pairs)).result(timeout=300).values
    finally:
        loop.stop()


def shuffled_pairs(long_documents: bool) -> pl.DataFrame:
    rows = make_pairs(4, 6, seed=3, doc_words=(3, 30))
    if long_documents:  # far beyond max_model_len: the document side must be cut, as the card cuts it
        for row in rows[::5]:
            row["passage"] = " ".join([row["passage"]] * 40)
    random.Random(0).shuffle(rows)  # scores must come back in input order whatever order the engine used
    frame = pl.DataFrame(rows)
    return frame.rename({"qid": "query_id", "query_text": "query", "pid": "doc_id", "passage": "document"})


def test_qwen3_template_scores_equal_the_model_card_reference(tiny_model: str) -> None:
    instruction = "Given a web search query, retrieve relevant passages that answer the query"
    scorer = create_scorer(tiny_spec(tiny_model, None, instruction))
    assert scorer.kind == "qwen3-yes-no" and scorer.describe()["template"] == "qwen3"
    pairs = shuffled_pairs(long_documents=True)
    prepared = scorer.prepare(pairs)
    assert prepared.truncated_pairs == 5
    scores = score(scorer, pairs)
    expected = qwen3_model_card_scores(
        tiny_model, list(zip(pairs["query"], pairs["document"], strict=True)), instruction, TINY_MAX_MODEL_LEN
    )
    assert np.abs(scores - expected).max() < TOLERANCE
    assert scores.std() > 0.01, "the tiny model must tell documents apart, or order bugs could hide"


@pytest.mark.parametrize("template", ["sep", "sep-instruct", "{query} || {instruction} || {document} ?"])
def test_other_templates_score_the_rendered_text(tiny_model: str, template: str) -> None:
    scorer = create_scorer(tiny_spec(tiny_model, template, "find passages about the query"))
    pairs = shuffled_pairs(long_documents=False)
    scores = score(scorer, pairs)
    texts = [
        render_prompt(parse_template(template), q, d, "find passages about the query")
        for q, d in zip(pairs["query"], pairs["document"], strict=True)
    ]
    expected = text_yes_no_scores(tiny_model, texts)
    assert np.abs(scores - expected).max() < TOLERANCE
