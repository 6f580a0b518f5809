"""scripts/benchlib.py's pure parts: the anchors' prompt, ranking drift (FP8 against bf16), Kendall's tau, and the
bench's dataset and memory-run checks. No engine: a few seconds."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

import benchlib  # noqa: E402
import memory_run  # noqa: E402
from bench import parse_datasets  # noqa: E402

from batchrank.prompts import parse_template, render_prompt  # noqa: E402


def test_the_anchors_prompt_is_the_model_cards_and_agrees_with_batchranks_template() -> None:
    # Written from scoring/reference.py, not from prompts.py: two independent spellings of the same prompt.
    text = benchlib.card_prompt("what is rag", "a passage")
    assert text == render_prompt(parse_template("qwen3"), "what is rag", "a passage")
    assert "<Instruct>: Given a web search query" in text and text.endswith("</think>\n\n")


def test_kendall_tau_b_matches_scipy_with_and_without_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.random(200)
    y = x + rng.normal(0, 0.1, 200)
    tied = np.round(y, 1)
    for a, b in ((x, y), (x, tied), (np.round(x, 1), tied)):
        assert benchlib.kendall_tau_b(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert benchlib.kendall_tau_b(x, x) == 1.0 and benchlib.kendall_tau_b(x, -x) == -1.0
    assert np.isnan(benchlib.kendall_tau_b(x, np.ones(200)))


def frame(scores: dict[str, list[float]]) -> pl.DataFrame:
    rows = [(q, f"{q}-d{i:02d}", s) for q, values in scores.items() for i, s in enumerate(values)]
    return pl.DataFrame(rows, schema=["query_id", "doc_id", "score"], orient="row")


def test_ranking_drift_counts_top_k_changes_and_order() -> None:
    base = list(np.linspace(1.0, 0.0, 20))
    inside = base.copy()
    inside[0], inside[1] = inside[1], inside[0]  # a swap within the top 10: the set stays, the order moves
    across = base.copy()
    across[9], across[10] = across[10], across[9]  # a swap across rank 10: the set changes
    reference = frame({"a": base, "b": base, "c": base, "d": base})
    other = frame({"a": inside, "b": across, "c": base, "d": [s + 0.5 for s in base]})
    drift = benchlib.ranking_drift(reference, other, k=10)
    assert drift["queries"] == 4 and drift["pairs_compared"] == 80
    assert drift["top_k_changed_share"] == 0.25, "only b's top-10 set changed"
    one_swap = 1 - 2 / (20 * 19 / 2)  # one discordant pair of 190
    assert drift["mean_kendall_tau"] == pytest.approx((one_swap + one_swap + 1 + 1) / 4)
    assert drift["min_kendall_tau"] == pytest.approx(one_swap)
    assert drift["max_abs_diff"] == pytest.approx(0.5) and drift["mean_abs_diff"] > 0.1


def test_score_agreement_over_the_shared_pairs_only() -> None:
    a = frame({"q": [0.1, 0.2, 0.3]})
    b = frame({"q": [0.1, 0.25]})
    agreement = benchlib.score_agreement(a, b)
    assert agreement["pairs_compared"] == 2 and agreement["max_abs_diff"] == pytest.approx(0.05)
    assert agreement["mean_abs_diff"] == pytest.approx(0.025) and agreement["all_finite"]


def test_datasets_are_docs_per_query_and_queries() -> None:
    assert parse_datasets("100:1500,1000:100") == [(100, 1500), (1000, 100)]
    for bad in ("100", "0:5", "a:b", ""):
        with pytest.raises(Exception, match="DOCS_PER_QUERY:QUERIES|no dataset"):
            parse_datasets(bad)


def test_synthetic_passages_respect_their_word_bounds() -> None:
    rows = benchlib.synthetic_pairs(3, 50, seed=4, doc_words=(300, 500), shortest=250)
    lengths = [len(r["document"].split()) for r in rows]
    assert len(rows) == 150 and min(lengths) >= 250 and max(lengths) <= 500
    assert len({r["query_id"] for r in rows}) == 3 and len({r["doc_id"] for r in rows}) == 150


def test_the_memory_run_fails_unless_every_long_document_was_cut() -> None:
    def result(name: str, pairs: int, truncated: int) -> dict[str, object]:
        return {"name": name, "returncode": 0, "pairs": pairs, "truncated_pairs": truncated}

    assert memory_run.problems([result("short", 20, 0), result("long", 20, 20)]) == []
    # The H200 run of issue 13: 10,440 tokens a prompt at max_model_len 32,768, nothing cut: that measured nothing.
    (problem,) = memory_run.problems([result("short", 20, 0), result("long", 20, 0)])
    assert "only 0 of 20 long passages were cut" in problem
    (problem,) = memory_run.problems([result("short", 20, 3), result("long", 20, 20)])
    assert "MS MARCO-length passages were cut" in problem
