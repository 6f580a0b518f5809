"""The measuring package's shared parts (batchrank.bench): the anchors' prompt, ranking drift (FP8 against bf16),
Kendall's tau, synthetic pairs, the throughput bench's option types, the memory run's checks, and the trace split's
interval arithmetic. No engine: a few seconds."""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
import pytest

from batchrank.bench import agreement, memory_run
from batchrank.bench.anchor_prompt import card_prompt
from batchrank.bench.options import json_object
from batchrank.bench.synthetic import parse_doc_words, synthetic_pairs
from batchrank.bench.throughput import parse_call_sizes
from batchrank.bench.throughput_data import parse_datasets
from batchrank.bench.trace_split import subtract, union, work_class
from batchrank.prompts import parse_template, render_prompt


def test_the_anchors_prompt_is_the_model_cards_and_agrees_with_batchranks_template() -> None:
    # Written from scoring/reference.py, not from prompts.py: two independent spellings of the same prompt.
    text = card_prompt("what is rag", "a passage")
    assert text == render_prompt(parse_template("qwen3"), "what is rag", "a passage")
    assert "<Instruct>: Given a web search query" in text and text.endswith("</think>\n\n")


def test_kendall_tau_b_matches_scipy_with_and_without_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.random(200)
    y = x + rng.normal(0, 0.1, 200)
    tied = np.round(y, 1)
    for a, b in ((x, y), (x, tied), (np.round(x, 1), tied)):
        assert agreement.kendall_tau_b(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert agreement.kendall_tau_b(x, x) == 1.0 and agreement.kendall_tau_b(x, -x) == -1.0
    assert np.isnan(agreement.kendall_tau_b(x, np.ones(200)))


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
    drift = agreement.ranking_drift(reference, other, k=10)
    assert drift["queries"] == 4 and drift["pairs_compared"] == 80
    assert drift["top_k_changed_share"] == 0.25, "only b's top-10 set changed"
    one_swap = 1 - 2 / (20 * 19 / 2)  # one discordant pair of 190
    assert drift["mean_kendall_tau"] == pytest.approx((one_swap + one_swap + 1 + 1) / 4)
    assert drift["min_kendall_tau"] == pytest.approx(one_swap)
    assert drift["max_abs_diff"] == pytest.approx(0.5) and drift["mean_abs_diff"] > 0.1


def test_score_agreement_over_the_shared_pairs_only() -> None:
    a = frame({"q": [0.1, 0.2, 0.3]})
    b = frame({"q": [0.1, 0.25]})
    found = agreement.score_agreement(a, b)
    assert found["pairs_compared"] == 2 and found["max_abs_diff"] == pytest.approx(0.05)
    assert found["mean_abs_diff"] == pytest.approx(0.025) and found["all_finite"]


def test_datasets_are_docs_per_query_and_queries() -> None:
    assert parse_datasets("100:1500,1000:100") == [(100, 1500), (1000, 100)]
    for bad in ("100", "0:5", "a:b", ""):
        with pytest.raises(Exception, match="DOCS_PER_QUERY:QUERIES|no dataset"):
            parse_datasets(bad)


def test_synthetic_passages_respect_their_word_bounds() -> None:
    rows = synthetic_pairs(3, 50, seed=4, doc_words=(300, 500), shortest=250)
    lengths = [len(r["document"].split()) for r in rows]
    assert len(rows) == 150 and min(lengths) >= 250 and max(lengths) <= 500
    assert len({r["query_id"] for r in rows}) == 3 and len({r["doc_id"] for r in rows}) == 150


def test_a_seeds_first_queries_are_the_same_pairs_whatever_the_number_of_queries() -> None:
    # What lets --vllm-reference anchor a longer dataset with plain vLLM's figures on a shorter one of the same seed.
    assert synthetic_pairs(5, 20, seed=7)[:40] == synthetic_pairs(2, 20, seed=7)


def test_option_types_name_what_is_wrong() -> None:
    assert parse_doc_words("30:90") == (30, 90) and json_object('{"max_num_seqs": 8}') == {"max_num_seqs": 8}
    assert parse_call_sizes("20000,5000,5000") == [5000, 20000] and parse_call_sizes("none") == []
    for parse, bad, message in ((parse_doc_words, "4:90", "MEDIAN:MAX"), (json_object, "[1]", "JSON object"),
                                (json_object, "{x", "not JSON"), (parse_call_sizes, "0,5", "prompts per call"),
                                (parse_call_sizes, "", "prompts per call")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(bad)


def test_the_trace_split_counts_overlapping_work_once_and_attention_first() -> None:
    assert union([(5, 7), (0, 2), (1, 3), (7, 8)]) == [(0, 3), (5, 8)]
    assert subtract([(0, 10)], [(2, 3), (5, 20)]) == [(0, 2), (3, 5)]
    # A FlashAttention 3 kernel's name carries CUTLASS template names: it is attention, not a matrix product.
    assert work_class("void flash::FlashAttnFwdSm90<cutlass::bfloat16_t>(...)") == "attention"
    assert work_class("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN") == "matmul"
    assert work_class("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "matmul"
    assert work_class("_C::onednn_mm") == "matmul" and work_class("_C::cpu_attention_with_kv_cache") == "attention"
    assert work_class("triton_poi_fused_add_rms_norm_0") == "other"


def test_the_memory_runs_long_passages_come_from_doc_words_when_given() -> None:
    args = memory_run.parse_arguments(["--model", "/nonexistent/model", "--doc-words", "3000:5000"])
    assert memory_run.long_doc_words(args) == ((3000, 5000), 8)  # no tokenizer read: sized in words as asked


def test_the_memory_run_can_run_one_half_and_checks_only_that_half() -> None:
    args = memory_run.parse_arguments(["--model", "/nonexistent/model", "--runs", "long"])
    assert args.run_list == ["long"]
    long_only = {"name": "longer than max_model_len", "returncode": 0, "pairs": 20, "truncated_pairs": 20}
    assert memory_run.problems([long_only]) == []
    with pytest.raises(SystemExit) as refused:
        memory_run.parse_arguments(["--model", "/nonexistent/model", "--runs", "short,medium"])
    assert refused.value.code == 2


def test_the_memory_run_fails_unless_every_long_document_was_cut() -> None:
    def result(run: str, pairs: int, truncated: int) -> dict[str, object]:
        name = {"short": "MS MARCO-length", "long": "longer than max_model_len"}[run]
        return {"name": name, "returncode": 0, "pairs": pairs, "truncated_pairs": truncated}

    assert memory_run.problems([result("short", 20, 0), result("long", 20, 20)]) == []
    # The H200 run of issue 13: 10,440 tokens a prompt at max_model_len 32,768, nothing cut: that measured nothing.
    (problem,) = memory_run.problems([result("short", 20, 0), result("long", 20, 0)])
    assert "only 0 of 20 long passages were cut" in problem
    (problem,) = memory_run.problems([result("short", 20, 3), result("long", 20, 20)])
    assert "MS MARCO-length passages were cut" in problem
