"""Token counts with a model's own tokenizer, for sizing synthetic text."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path


def token_counter(model_dir: str | Path) -> Callable[[list[str]], list[int]]:
    """texts -> token counts with the model's own tokenizer (the `tokenizers` library alone: no torch import)."""
    path = Path(model_dir) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        return lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=True)]
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(model_dir)
    return lambda texts: [len(ids) for ids in auto(texts)["input_ids"]]


def tokens_per_word(count_tokens: Callable[[list[str]], list[int]], words: int = 4000, seed: int = 0) -> float:
    """Tokens per word of the synthetic text, measured on one long sample."""
    from batchrank.models.random_qwen3 import training_words

    sample = " ".join(random.Random(seed).choices(training_words(), k=words))
    return count_tokens([sample])[0] / words
