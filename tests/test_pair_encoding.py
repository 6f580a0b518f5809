"""PairEncoder gives exactly the ids and token types of `tokenizer(query, document, truncation="only_second")`, for
BERT's and XLM-R's tokenizers, and never cuts the query (no engine)."""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from batchrank.errors import SpecError
from batchrank.pair_encoding import PairEncoder, find_pair_wrapping
from batchrank.prompts import token_id_function
from conftest import WORDS

MAX_LEN = 48


def texts(seed: int, count: int, words: tuple[int, int]) -> list[str]:
    """Never blank (a blank document is a bad row, never scored)."""
    rng = random.Random(seed)
    extra = ["Ünïcödé", "東京", "naïve", "café,", "b-tree?", "[SEP]", "  ", "\t"]
    return [" ".join([rng.choice(WORDS), *rng.choices(WORDS + extra, k=rng.randint(*words))]) for _ in range(count)]


@pytest.fixture(scope="module", params=["minilm", "xlmr"])
def tokenizer(request: pytest.FixtureRequest):
    return AutoTokenizer.from_pretrained(request.getfixturevalue(f"{request.param}_cross_encoder"))


def test_pairs_equal_the_tokenizers_own_pair_encoding_truncated_on_the_document_side(tokenizer) -> None:
    queries = [q for q in texts(1, 6, (1, 8)) for _ in range(5)]
    documents = texts(2, len(queries), (0, 60))
    encoded = PairEncoder(tokenizer, MAX_LEN).encode(queries, documents)
    assert encoded.too_long == [] and 0 < encoded.truncated.sum() < len(queries)
    for i, (query, document) in enumerate(zip(queries, documents, strict=True)):
        own = tokenizer(query, document, truncation="only_second", max_length=MAX_LEN)
        assert encoded.token_ids[i] == own["input_ids"]
        assert encoded.truncated[i] == (len(tokenizer(query, document)["input_ids"]) > MAX_LEN)
        if "token_type_ids" in own:
            start = encoded.token_type_starts[i]
            assert own["token_type_ids"] == [0] * start + [1] * (len(own["input_ids"]) - start)
        else:
            assert encoded.token_type_starts is None


def test_a_query_that_leaves_no_room_for_the_document_is_too_long_not_cut(tokenizer) -> None:
    encoder = PairEncoder(tokenizer, MAX_LEN)
    long_query = " ".join(["tower"] * MAX_LEN)
    encoded = encoder.encode([long_query, "water boils"], ["paris iron", "at sea level"])
    assert encoded.too_long == [0]
    assert encoder.too_long_queries([long_query, "water boils"]) == [0]


def test_the_wrappings_are_described_in_the_tokenizers_own_tokens(minilm_cross_encoder: str,
                                                                  xlmr_cross_encoder: str) -> None:
    bert = AutoTokenizer.from_pretrained(minilm_cross_encoder)
    assert PairEncoder(bert, MAX_LEN).wrapping.describe(bert) == {
        "encoding": "[CLS] {query} [SEP] {document} [SEP]",
        "token_type_ids": "0: [CLS] {query} [SEP]; 1: {document} [SEP]",
    }
    xlmr = AutoTokenizer.from_pretrained(xlmr_cross_encoder)
    assert PairEncoder(xlmr, MAX_LEN).wrapping.describe(xlmr)["encoding"] == "<s> {query} </s> </s> {document} </s>"


def test_a_pair_encoding_that_is_not_a_wrapping_of_the_two_texts_is_refused(minilm_cross_encoder: str) -> None:
    bert = AutoTokenizer.from_pretrained(minilm_cross_encoder)
    ids = token_id_function(bert)

    def reversed_pairs(text, text_pair=None, **kwargs):  # a tokenizer that puts the document first
        return bert(text_pair, text, **kwargs)

    with pytest.raises(SpecError, match="prompt.template pair: cannot reproduce the pair encoding"):
        find_pair_wrapping(reversed_pairs, ids)
