"""What an embedding model embeds: each query and each document on its own, as `SentenceTransformer.encode` does.

A text is its prefix (a prompt: e5's "query: " / "passage: ", Qwen3-Embedding's "Instruct: …\\nQuery:" on queries
only) followed by the text, tokenized as one string with the tokenizer's own special tokens around it. A document
that does not fit max_model_len is cut from its end; a query is never cut: one that does not fit is too long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from batchrank.errors import SpecError
from batchrank.prompts import EncodedPrompts, special_token_wrapping, token_id_function
from batchrank.spec import PromptSpec


def instruction_prefix(instruction: str) -> str:
    """The Qwen3-Embedding model card's query prompt: `Instruct: {task}\\nQuery:{query}` (no space after the colon)."""
    return f"Instruct: {instruction}\nQuery:"


@dataclass(frozen=True)
class EmbeddingPrompts:
    query_prefix: str = ""
    document_prefix: str = ""

    @classmethod
    def from_spec(cls, prompt: PromptSpec) -> EmbeddingPrompts:
        """prompt.query_prefix / document_prefix; prompt.instruction is the shortcut for Qwen3-Embedding's query
        prefix."""
        if prompt.instruction is not None and prompt.query_prefix is not None:
            raise SpecError("prompt.instruction and prompt.query_prefix both set the query's prompt; set one "
                            f"(instruction X means query_prefix {instruction_prefix('X')!r})")
        query = instruction_prefix(prompt.instruction) if prompt.instruction is not None else prompt.query_prefix
        return cls(query or "", prompt.document_prefix or "")


def lowercase_like_sentence_transformers(tokenizer: Any) -> None:
    """What sentence-transformers does for `do_lower_case: true`: a Lowercase step first in the tokenizer's
    normalizer, unless it already has one."""
    from tokenizers.normalizers import Lowercase, Sequence

    backend = tokenizer.backend_tokenizer
    normalizer = backend.normalizer
    steps = list(normalizer) if isinstance(normalizer, Sequence) else [normalizer] if normalizer else []
    if not any(isinstance(step, Lowercase) for step in steps):
        backend.normalizer = Sequence([Lowercase(), *steps])


class TextEncoder:
    """Prefixed single texts -> token ids with the tokenizer's special tokens, fitted to max_model_len."""

    def __init__(self, tokenizer: Any, max_model_len: int, prompts: EmbeddingPrompts):
        self.prompts, self.max_model_len = prompts, max_model_len
        self.lead, self.trail = special_token_wrapping(tokenizer)
        self._ids = token_id_function(tokenizer)
        self.room = max_model_len - len(self.lead) - len(self.trail)
        if prompts.document_prefix and len(self._ids([prompts.document_prefix])[0]) >= self.room:
            raise SpecError(f"prompt.document_prefix: its tokens fill max_model_len {max_model_len}, leaving no room "
                            "for any document text")

    def _encode(self, texts: list[str], prefix: str, cut: bool) -> EncodedPrompts:
        ids = self._ids([prefix + text for text in texts])
        over = np.array([len(x) > self.room for x in ids], dtype=bool)
        if cut:
            return EncodedPrompts([self.lead + x[: self.room] + self.trail for x in ids], over, [])
        return EncodedPrompts([self.lead + x + self.trail for x in ids], np.zeros(len(ids), dtype=bool),
                              np.flatnonzero(over).tolist())

    def encode_queries(self, queries: list[str]) -> EncodedPrompts:
        """Never cut: a query whose prompt does not fit is in `too_long`."""
        return self._encode(queries, self.prompts.query_prefix, cut=False)

    def encode_documents(self, documents: list[str]) -> EncodedPrompts:
        return self._encode(documents, self.prompts.document_prefix, cut=True)

    def too_long_queries(self, queries: list[str]) -> list[int]:
        return self.encode_queries(queries).too_long

    def describe(self, tokenizer: Any) -> dict[str, str]:
        def wrap(text: str) -> str:
            tokens = tokenizer.convert_ids_to_tokens(self.lead) + [text] + tokenizer.convert_ids_to_tokens(self.trail)
            return " ".join(tokens)

        return {"query": self.prompts.query_prefix + "{query}", "document": self.prompts.document_prefix + "{document}",
                "encoding": wrap("{text}")}
