"""Reference scores in plain transformers, used by the tests to check the vLLM path on the same weights.

`qwen3_model_card_scores` follows the Qwen3-Reranker model card step by step (its own prefix/suffix tokenization,
`truncation="longest_first"`, softmax over the "no"/"yes" logits at the last position, or their difference: the
logit sentence-transformers' LogitScore gives for Qwen3-Reranker); it shares no code with
batchrank's prompt module, so a template or truncation bug cannot hide in both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def _load(model_dir: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return tokenizer, model


def _no_yes_logits(model: Any, tokenizer: Any, token_ids: list[list[int]]) -> np.ndarray:
    """The model's float32 'no' and 'yes' logits at the last position of each prompt, shape (n, 2)."""
    import torch

    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    rows = []
    with torch.no_grad():
        for ids in token_ids:  # one at a time: no padding, so nothing but the prompt can move the score
            rows.append(model(torch.tensor([ids])).logits[0, -1, [no, yes]].numpy())
    return np.stack(rows)


def _card_score(logits: np.ndarray, score: str) -> np.ndarray:
    """P(yes) (the card's softmax, in float64), or the yes-no logit in float32 (LogitScore's subtraction)."""
    if score == "logit":
        return (logits[:, 1] - logits[:, 0]).astype(np.float32)
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return np.exp(shifted[:, 1]) / np.exp(shifted).sum(axis=1)


def qwen3_model_card_scores(
    model_dir: str, pairs: list[tuple[str, str]], instruction: str | None, max_length: int, score: str = "probability"
) -> np.ndarray:
    """P(yes) for (query, document) pairs exactly as the Qwen3-Reranker model card computes it; score="logit": the
    yes-no logit from the same forward pass, in float32."""
    tokenizer, model = _load(model_dir)
    instruction = instruction if instruction is not None else CARD_DEFAULT_INSTRUCTION
    bodies = [f"<Instruct>: {instruction}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    prefix = tokenizer.encode(CARD_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(CARD_SUFFIX, add_special_tokens=False)
    encoded = tokenizer(
        bodies,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix) - len(suffix),
    )
    logits = _no_yes_logits(model, tokenizer, [prefix + ids + suffix for ids in encoded["input_ids"]])
    return _card_score(logits, score)


def text_yes_no_scores(model_dir: str, texts: list[str]) -> np.ndarray:
    """P(yes) at the last position of each full prompt text, tokenized whole."""
    tokenizer, model = _load(model_dir)
    logits = _no_yes_logits(model, tokenizer, tokenizer(texts, add_special_tokens=True)["input_ids"])
    return _card_score(logits, "probability")
