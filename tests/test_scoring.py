"""vLLM scores equal the model card's formula computed in plain transformers on the same weights (qwen3-yes-no),
through the scorer factory and the engine loop the pipeline uses; model.score logit gives the card's yes-no margin,
which never saturates where P(yes) does."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from batchrank.pipeline.score import EngineLoop
from batchrank.prompts import parse_template, render_prompt
from batchrank.scoring.base import EnginePlacement, Scorer
from batchrank.scoring.factory import VllmScorerFactory
from batchrank.scoring.reference import qwen3_model_card_scores, text_yes_no_scores
from batchrank.spec import JobSpec
from conftest import TINY_MAX_MODEL_LEN, make_pairs, run_cli, run_pairs, write_job, write_parquet

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


@pytest.fixture(scope="module")
def confident_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny reranker with its final norm scaled 6x: every yes-no margin 6x wider (about -22 to 44 on these
    pairs), so that many pass the 16.6 beyond which P(yes) rounds to 1.0 in float32, as a confident real
    reranker's do."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("models") / "confident-qwen3"
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.mul_(6.0)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return str(out)


def ranks_by_pair(out: Path) -> dict[tuple[str, str], int]:
    parts = pl.read_parquet(str(out / "scores" / "*.parquet"))
    return {(row["query_id"], row["doc_id"]): row["rank"] for row in parts.iter_rows(named=True)}


def test_the_logit_score_is_the_cards_yes_no_margin_and_never_saturates(confident_model: str, tmp_path: Path) -> None:
    rows = shuffled_pairs(long_documents=True).to_dicts()
    model = {"max_model_len": TINY_MAX_MODEL_LEN}
    probability, probability_run = run_pairs(tmp_path / "probability", confident_model, rows, model=model)
    logit, logit_run = run_pairs(tmp_path / "logit", confident_model, rows, model={**model, "score": "logit"})
    probability, logit = np.array(probability), np.array(logit)
    pairs = [(row["query"], row["document"]) for row in rows]
    expected = qwen3_model_card_scores(confident_model, pairs, None, TINY_MAX_MODEL_LEN, score="logit")
    assert expected.dtype == np.float32
    assert (np.abs(logit - expected) <= 1e-4 * np.maximum(1.0, np.abs(expected))).all()
    saturated = probability == 1.0
    assert saturated.sum() >= 5, "the confident model's P(yes) rounds to 1.0 on these pairs"
    assert len(set(logit[saturated])) == saturated.sum(), "the logit still tells the saturated pairs apart"
    assert logit[saturated].min() > 16.0
    unsaturated = ~saturated
    assert np.abs(1 / (1 + np.exp(-logit[unsaturated])) - probability[unsaturated]).max() < 1e-5
    # The same order: ranks agree wherever the probability is not tied at 1.0 (there the logit breaks the tie).
    logit_ranks, probability_ranks = ranks_by_pair(tmp_path / "logit" / "out"), ranks_by_pair(tmp_path /
                                                                                             "probability" / "out")
    for query_id in {row["query_id"] for row in rows}:
        keys = [(r["query_id"], r["doc_id"]) for r, s in zip(rows, saturated) if r["query_id"] == query_id and not s]
        assert sorted(keys, key=logit_ranks.get) == sorted(keys, key=probability_ranks.get)
    assert (probability_run["model"]["score"], logit_run["model"]["score"]) == ("probability", "logit")
    assert logit_run["model"]["input_format"]["score"].startswith("logit: the 'yes' logit minus the 'no' logit")
    assert logit_run["model"]["engine_arguments"]["pooler_config"] == {"use_activation": False}
    assert probability_run["model"]["input_format"]["score"].startswith("P(yes)")
    assert "logit: the &#x27;yes&#x27; logit minus" in (tmp_path / "logit" / "out" / "report.html").read_text()


def test_a_checkpoint_is_not_resumed_across_the_score_choice(tiny_model: str) -> None:
    from batchrank.io.input import InputFiles
    from batchrank.planning.fingerprint import describe_changes, job_fingerprint

    files = InputFiles([], {}, tiny_spec(tiny_model, None, None).input)
    fingerprints = []
    for score in ("probability", "logit"):
        spec = tiny_spec(tiny_model, None, None)
        spec.model.score = score
        fingerprints.append(job_fingerprint(spec, files, VllmScorerFactory().inspect(spec)))
    changes = describe_changes(*fingerprints)
    assert len(changes) == 1 and changes[0].startswith("model.input_format.score changed since the checkpoint: "
                                                       "\"P(yes): softmax")


def test_validate_describes_the_chosen_score_and_refuses_the_engine_switch(tiny_model: str, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", write_parquet(make_pairs(2, 3), tmp_path / "in.parquet"), tiny_model,
                    tmp_path / "out")
    result = run_cli("validate", str(job), "--set", "model.score=logit")
    assert result.exit_code == 0, result.output
    assert "  score: logit: the 'yes' logit minus the 'no' logit at the last position" in result.output
    result = run_cli("validate", str(job), "--set", "model.score=null",
                     "--set", "model.engine={pooler_config: {use_activation: false}}")
    assert result.exit_code == 2
    assert "model.engine.pooler_config.use_activation: set model.score instead" in result.output
    result = run_cli("validate", str(job), "--set", "model.score=odds")
    assert result.exit_code == 2 and "model.score: Input should be 'probability' or 'logit'" in result.output
    assert not (tmp_path / "out").exists()
