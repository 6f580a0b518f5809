"""A cross-encoder's input as its own tokenizer encodes a (query, document) pair, cut on the document side only.

`tokenizer(query, document)` is what sentence-transformers' CrossEncoder and vLLM's `LLM.score` feed a
cross-encoder: the tokenizer's special tokens around the two texts' token ids, `[CLS] q [SEP] d [SEP]` with token
types 0…0 1…1 for BERT, `<s> q </s></s> d </s>` without token types for XLM-R. PairWrapping finds those special
tokens and where token type 1 starts once, from the tokenizer's own output, and checks that putting them around the
texts' ids reproduces that output exactly, truncated pairs (`only_second`) included; PairEncoder then encodes a
chunk with two batch calls (each distinct query once, the documents) and list concatenation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchrank.errors import SpecError
from batchrank.prompts import EncodedPrompts, token_id_function

# Spaces, punctuation, non-ASCII, an empty-looking document; the last pair is also checked truncated.
_PROBE_PAIRS = [
    ("what is a b-tree?", "A B-tree is a self-balancing search tree."),
    (" Ünïcödé — 東京  naïve", "café\t\n x [SEP] y"),
    ("q", "one two three four five six seven eight nine ten eleven twelve"),
]


@dataclass(frozen=True)
class PairWrapping:
    """The special tokens of a tokenizer's pair encoding: lead + query + middle + document + trail."""

    lead: list[int]
    middle: list[int]
    trail: list[int]
    # Where token type 1 starts, counted from the start of `middle` (BERT: len(middle), at the document); None when
    # the tokenizer gives no token types or all zeros (vLLM's default then).
    type_one_in_middle: int | None

    @property
    def special_tokens(self) -> int:
        return len(self.lead) + len(self.middle) + len(self.trail)

    def assemble(self, query: list[int], document: list[int]) -> list[int]:
        return self.lead + query + self.middle + document + self.trail

    def type_one_start(self, query_tokens: int) -> int | None:
        if self.type_one_in_middle is None:
            return None
        return len(self.lead) + query_tokens + self.type_one_in_middle

    def describe(self, tokenizer: Any) -> dict[str, str]:
        """The encoding and its token types in the tokenizer's own token strings (run.json, `batchrank validate`)."""

        def tokens(ids: list[int]) -> str:
            return "".join(f"{token} " for token in tokenizer.convert_ids_to_tokens(ids))

        described = {"encoding": f"{tokens(self.lead)}{{query}} {tokens(self.middle)}{{document}} "
                                 f"{tokens(self.trail)}".strip()}
        if self.type_one_in_middle is None:
            described["token_type_ids"] = "none (every token type 0)"
        else:
            split = self.type_one_in_middle
            described["token_type_ids"] = (f"0: {tokens(self.lead)}{{query}} {tokens(self.middle[:split])}".strip()
                                           + f"; 1: {tokens(self.middle[split:])}{{document}} "
                                           + tokens(self.trail).strip())
        return described


def _split(pair: list[int], query: list[int], document: list[int]) -> tuple[list[int], list[int], list[int]] | None:
    for start in range(len(pair) - len(query) + 1):
        if pair[start : start + len(query)] != query:
            continue
        after = start + len(query)
        for doc_start in range(after, len(pair) - len(document) + 1):
            if pair[doc_start : doc_start + len(document)] == document:
                return pair[:start], pair[after:doc_start], pair[doc_start + len(document) :]
    return None


def _type_one_in_middle(types: list[int] | None, lead: int, query: int, middle: int) -> int | None:
    if not types or not any(types):
        return None
    boundary = types.index(1)
    if types != [0] * boundary + [1] * (len(types) - boundary) or not lead + query <= boundary <= lead + query + middle:
        raise ValueError(f"token types {types} are not 0 for the query part and 1 from the document on")
    return boundary - lead - query


def find_pair_wrapping(tokenizer: Any, token_ids: Callable[[list[str]], list[list[int]]]) -> PairWrapping:
    """The tokenizer's pair encoding as a wrapping of the texts' own ids, checked against `tokenizer(q, d)` (and
    `truncation="only_second"`) on probe pairs; SpecError when the tokenizer's pairs are not built that way."""
    name = type(tokenizer).__name__
    query, document = _PROBE_PAIRS[0]
    own = tokenizer(query, document, truncation=False)
    query_ids, document_ids = token_ids([query, document])
    pieces = _split(list(own["input_ids"]), query_ids, document_ids)
    try:
        if pieces is None:
            raise ValueError("its pair encoding does not hold the two texts' own token ids")
        lead, middle, trail = pieces
        types = own.get("token_type_ids")
        type_one = _type_one_in_middle(list(types) if types else None, len(lead), len(query_ids), len(middle))
        wrapping = PairWrapping(lead, middle, trail, type_one)
        _check(tokenizer, token_ids, wrapping)
    except ValueError as error:
        raise SpecError(f"prompt.template pair: cannot reproduce the pair encoding of this model's tokenizer "
                        f"({name}): {error}; use a text template (sep, or a custom one)") from None
    return wrapping


def _check(tokenizer: Any, token_ids: Callable[[list[str]], list[list[int]]], wrapping: PairWrapping) -> None:
    for number, (query, document) in enumerate(_PROBE_PAIRS):
        query_ids, document_ids = token_ids([query, document])
        cut = len(document_ids) // 2 if number == len(_PROBE_PAIRS) - 1 else len(document_ids)
        length = wrapping.special_tokens + len(query_ids) + cut
        own = tokenizer(query, document, truncation="only_second", max_length=length)
        ours = wrapping.assemble(query_ids, document_ids[:cut])
        if list(own["input_ids"]) != ours:
            raise ValueError(f"for {(query, document)!r} it gives {list(own['input_ids'])}, the wrapping {ours}")
        start = wrapping.type_one_start(len(query_ids))
        types = own.get("token_type_ids") or [0] * len(ours)
        if start is not None and list(types) != [0] * start + [1] * (len(ours) - start):
            raise ValueError(f"for {(query, document)!r} its token types are {list(types)}")


class PairEncoder:
    """(query, document) pairs -> the tokenizer's pair encoding, the document cut from its end to fit max_model_len
    (`only_second`: the query is never cut; a query that leaves no room for one document token is too long)."""

    def __init__(self, tokenizer: Any, max_model_len: int):
        self.max_model_len = max_model_len
        self._ids = token_id_function(tokenizer)
        self.wrapping = find_pair_wrapping(tokenizer, self._ids)

    def _query_ids(self, queries: list[str]) -> dict[str, list[int]]:
        unique = list(dict.fromkeys(queries))
        return dict(zip(unique, self._ids(unique), strict=True))

    def encode(self, queries: list[str], documents: list[str]) -> EncodedPrompts:
        query_ids, document_ids = self._query_ids(queries), self._ids(documents)
        room = self.max_model_len - self.wrapping.special_tokens
        token_ids, starts, too_long = [], [], []
        truncated = np.zeros(len(queries), dtype=bool)
        for i, (query, document) in enumerate(zip(queries, document_ids, strict=True)):
            ids = query_ids[query]
            budget = room - len(ids)
            if budget <= 0:
                too_long.append(i)
            if len(document) > budget:
                document = document[: max(budget, 0)]
                truncated[i] = True
            token_ids.append(self.wrapping.assemble(ids, document))
            starts.append(self.wrapping.type_one_start(len(ids)))
        types = None if self.wrapping.type_one_in_middle is None else starts
        return EncodedPrompts(token_ids, truncated, too_long, types)

    def too_long_queries(self, queries: list[str]) -> list[int]:
        """Positions of the queries that leave no room for any document token within max_model_len."""
        room = self.max_model_len - self.wrapping.special_tokens
        return [i for i, ids in enumerate(self._ids(queries)) if len(ids) >= room]
