"""Reference scores in plain transformers, used by the tests to check the vLLM path on the same weights.

`qwen3_model_card_scores` follows the Qwen3-Reranker model card step by step (its own prefix/suffix tokenization,
`truncation="longest_first"`, softmax over the "no"/"yes" logits at the last position); it shares no code with
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


def _yes_no_probability(model: Any, tokenizer: Any, token_ids: list[list[int]]) -> np.ndarray:
    import torch

    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    scores = []
    with torch.no_grad():
        for ids in token_ids:  # one at a time: no padding, so nothing but the prompt can move the score
            logits = model(torch.tensor([ids])).logits[0, -1, [no, yes]]
            scores.append(torch.softmax(logits.double(), dim=-1)[1].item())
    return np.array(scores)


def qwen3_model_card_scores(
    model_dir: str, pairs: list[tuple[str, str]], instruction: str | None, max_length: int
) -> np.ndarray:
    """P(yes) for (query, document) pairs exactly as the Qwen3-Reranker model card computes it."""
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
    return _yes_no_probability(model, tokenizer, [prefix + ids + suffix for ids in encoded["input_ids"]])


def text_yes_no_scores(model_dir: str, texts: list[str]) -> np.ndarray:
    """P(yes) at the last position of each full prompt text, tokenized whole."""
    tokenizer, model = _load(model_dir)
    return _yes_no_probability(model, tokenizer, tokenizer(texts, add_special_tokens=True)["input_ids"])
