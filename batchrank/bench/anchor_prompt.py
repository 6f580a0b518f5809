"""The prompt text the plain anchors (plain vLLM, plain transformers) send: the Qwen3-Reranker model card's, written
from batchrank.scoring.reference (the card step by step), which shares no code with batchrank.prompts, so a template
bug in batchrank shows up as a score disagreement instead of hiding in both."""

from __future__ import annotations

from batchrank.scoring.reference import CARD_DEFAULT_INSTRUCTION, CARD_PREFIX, CARD_SUFFIX


def card_prompt(query: str, document: str) -> str:
    """The Qwen3-Reranker model card's prompt text for one pair."""
    return f"{CARD_PREFIX}<Instruct>: {CARD_DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {document}{CARD_SUFFIX}"
