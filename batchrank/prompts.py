"""Prompt templates, their rendering, and tokenization that truncates only the document side.

A template is four parts: a constant `prefix` tokenized on its own (the chat system line), a `head` before the
document that may hold {query} and {instruction}, the document, and a `tail` after it tokenized on its own. This is
exactly how the Qwen3-Reranker model card builds its inputs (prefix tokens + tokenized body + suffix tokens), so
the token ids we send to the engine are the ones the model was trained on. `pair` is not a text template: it names
the tokenizer's own pair encoding of a cross-encoder (pair_encoding.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchrank.errors import SpecError

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_SYSTEM_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
TEMPLATE_FIELDS = ("query", "document", "instruction")
PAIR_TEMPLATE = "pair"  # the tokenizer's own pair encoding (pair_encoding.PairEncoder), not a text template
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Template:
    name: str
    prefix: str
    head: str
    tail: str
    uses_instruction: bool

    def text(self) -> str:
        """The whole template as one string with its {fields} (what run.json and `batchrank validate` show)."""
        return self.prefix + self.head + "{document}" + self.tail


BUILTIN_TEMPLATES: dict[str, Template] = {
    "qwen3": Template(
        "qwen3",
        QWEN3_SYSTEM_PREFIX,
        "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: ",
        QWEN3_SUFFIX,
        uses_instruction=True,
    ),
    "sep": Template("sep", "", "{query} [SEP] ", "", uses_instruction=False),
    "sep-instruct": Template(
        "sep-instruct", "", "Instruct: {instruction}\n\nQuery: {query} [SEP] Document: ", "", uses_instruction=True
    ),
}


def _check_custom_fields(text: str) -> None:
    # Only bare field names are substituted; `{query.__class__}` or `{0}` never reach str.format.
    stripped = text.replace("{{", "").replace("}}", "")
    for match in _FIELD.finditer(stripped):
        if match.group(1) not in TEMPLATE_FIELDS:
            raise SpecError(
                f"prompt.template: {{{match.group(1)}}} is not allowed; use only {{query}}, {{document}}, "
                "{instruction} (write {{ and }} for literal braces)"
            )
    if stripped.count("{") != stripped.count("}") or _FIELD.sub("", stripped).count("{"):
        raise SpecError("prompt.template: unbalanced braces; write {{ and }} for literal braces")


def check_template(template: str) -> None:
    """Refuse a malformed or unsafe prompt.template before anything is read or written (`pair` is always valid)."""
    if template != PAIR_TEMPLATE:
        parse_template(template)


def parse_template(template: str) -> Template:
    """A built-in template by name, or a custom one with exactly one {document} and at least one {query}."""
    if template in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[template]
    _check_custom_fields(template)
    if template.count("{document}") != 1 or "{query}" not in template:
        raise SpecError(
            f"prompt.template {template!r}: a custom template needs {{query}} and exactly one {{document}}, "
            f"or use a built-in one: {', '.join([PAIR_TEMPLATE, *BUILTIN_TEMPLATES])}"
        )
    head, tail = template.split("{document}")
    return Template("custom", "", head, tail, uses_instruction="{instruction}" in template)


def _fill(text: str, query: str, instruction: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        return {"query": query, "instruction": instruction}[match.group(1)]

    # Escaped braces are swapped out first so that `{{query}}` stays literal.
    protected = text.replace("{{", "\x00").replace("}}", "\x01")
    return _FIELD.sub(substitute, protected).replace("\x00", "{").replace("\x01", "}")


def resolve_instruction(instruction: str | None) -> str:
    return instruction if instruction is not None else DEFAULT_INSTRUCTION


def render_prompt(template: Template, query: str, document: str, instruction: str | None = None) -> str:
    """The full prompt text for one pair, untruncated (what a human reads; the engine gets token ids)."""
    filled = resolve_instruction(instruction)
    return template.prefix + _fill(template.head, query, filled) + document + _fill(template.tail, query, filled)


@dataclass
class EncodedPrompts:
    """Token ids for a list of pairs, in the order given, and which pairs lost document tokens."""

    token_ids: list[list[int]]
    truncated: np.ndarray
    too_long: list[int]  # indices whose query and instruction alone do not fit max_model_len
    # Per prompt, where token type 1 (the document segment) starts, for a pair encoding with token types; else None.
    token_type_starts: list[int] | None = None

    @property
    def num_tokens(self) -> int:
        return sum(len(ids) for ids in self.token_ids)


def special_token_wrapping(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a single sequence ([CLS] … [SEP] for BERT, none for Qwen)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(wrapped) - len(bare) + 1):
        if wrapped[start : start + len(bare)] == bare:
            return wrapped[:start], wrapped[start + len(bare) :]
    return [], []


# Checked against the tokenizer's own call before its backend is used directly: special tokens, spaces, non-ASCII.
_PROBE_TEXTS = ["<|im_start|>user\n<Query>: what is  a b-tree?", " Ünïcödé — 東京 naïve café\t\n", "[SEP] x [CLS]", ""]


def fast_token_ids(tokenizer: Any) -> Callable[[list[str]], list[list[int]]] | None:
    """The `tokenizers` backend's encode_batch_fast (no character offsets; PromptEncoder.encode 17-23% faster than
    through the tokenizer's own call with default parallelism: python -m batchrank.bench.prepare_cost), on a copy with truncation
    and padding off, since a tokenizer.json may carry them (all-MiniLM-L6-v2's truncates at 128) and only batchrank
    may shorten a prompt. None when the tokenizer has no such backend or its ids differ from the tokenizer's own on
    the probe texts."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    from tokenizers import Tokenizer

    own = Tokenizer.from_str(backend.to_str())
    own.no_truncation()
    own.no_padding()

    def token_ids(texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in own.encode_batch_fast(texts, add_special_tokens=False)]

    expected = tokenizer(_PROBE_TEXTS, add_special_tokens=False, truncation=False)["input_ids"]
    return token_ids if token_ids(_PROBE_TEXTS) == [list(ids) for ids in expected] else None


def own_token_ids(tokenizer: Any) -> Callable[[list[str]], list[list[int]]]:
    """Texts -> their token ids through the tokenizer's own call (no special tokens, untruncated)."""

    def own(texts: list[str]) -> list[list[int]]:
        return [list(ids) for ids in tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]]

    return own


def token_id_function(tokenizer: Any) -> Callable[[list[str]], list[list[int]]]:
    """Texts -> their token ids without special tokens and untruncated: fast_token_ids where it is exact, else the
    tokenizer's own call."""
    return fast_token_ids(tokenizer) or own_token_ids(tokenizer)


class PromptEncoder:
    """Renders and tokenizes pairs with a template, truncating only the document to fit `max_model_len`."""

    def __init__(self, tokenizer: Any, template: Template, instruction: str | None, max_model_len: int,
                 token_ids: Callable[[list[str]], list[list[int]]] | None = None):
        """`token_ids`: how texts become ids (default token_id_function; batchrank.bench.prepare_cost times both)."""
        self.tokenizer = tokenizer
        self.template = template
        self.instruction = resolve_instruction(instruction)
        self.max_model_len = max_model_len
        self.lead, self.trail = special_token_wrapping(tokenizer)
        self._ids = token_ids or token_id_function(tokenizer)
        self.prefix_ids = self._ids([template.prefix])[0] if template.prefix else []

    def encode(self, queries: list[str], documents: list[str]) -> EncodedPrompts:
        unique_queries = list(dict.fromkeys(queries))
        heads = {q: _fill(self.template.head, q, self.instruction) for q in unique_queries}
        tails = {q: _fill(self.template.tail, q, self.instruction) for q in unique_queries}
        tail_ids = dict(zip(unique_queries, self._ids([tails[q] for q in unique_queries]), strict=True))
        bodies = self._ids([heads[q] + d for q, d in zip(queries, documents, strict=True)])
        fixed = len(self.lead) + len(self.prefix_ids) + len(self.trail)
        head_lengths: dict[str, int] = {}
        token_ids, truncated, too_long = [], np.zeros(len(queries), dtype=bool), []
        for i, (query, body) in enumerate(zip(queries, bodies, strict=True)):
            budget = self.max_model_len - fixed - len(tail_ids[query])
            if len(body) > budget:
                if query not in head_lengths:
                    head_lengths[query] = len(self._ids([heads[query]])[0])
                if head_lengths[query] >= budget:
                    too_long.append(i)
                body = body[: max(budget, 0)]
                truncated[i] = True
            token_ids.append(self.lead + self.prefix_ids + body + tail_ids[query] + self.trail)
        return EncodedPrompts(token_ids, truncated, too_long)

    def too_long_queries(self, queries: list[str]) -> list[int]:
        """Positions of the queries whose prompt without any document already fills max_model_len."""
        heads = self._ids([_fill(self.template.head, q, self.instruction) for q in queries])
        tails = self._ids([_fill(self.template.tail, q, self.instruction) for q in queries])
        fixed = len(self.lead) + len(self.prefix_ids) + len(self.trail)
        return [i for i, (head, tail) in enumerate(zip(heads, tails, strict=True))
                if len(head) >= self.max_model_len - fixed - len(tail)]
