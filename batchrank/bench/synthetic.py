"""MS MARCO-shaped synthetic pairs, grouped by query: what every throughput and memory measurement scores."""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from pathlib import Path

from batchrank.bench.anchor_prompt import card_prompt

MS_MARCO_WORDS = (52, 400)  # passage words: log-normal median (MS MARCO's mean is ~56) and longest


def parse_doc_words(text: str) -> tuple[int, int]:
    """MEDIAN:MAX passage words (an argparse type)."""
    median, _, longest = text.partition(":")
    if not (median.isdigit() and longest.isdigit() and 8 <= int(median) <= int(longest)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MEDIAN:MAX words with 8 <= MEDIAN <= MAX")
    return int(median), int(longest)


def synthetic_pairs(n_queries: int, docs_per_query: int, seed: int, doc_words: tuple[int, int] = MS_MARCO_WORDS,
                    shortest: int = 8) -> list[dict[str, str]]:
    """Queries of 3-10 words; passages log-normal around doc_words[0] words, clipped to [shortest, doc_words[1]].
    The words are the ones the random models' tokenizer was trained on, so tokens per word are realistic for it.
    Queries are drawn one after another: the first N queries of a seed are the same whatever n_queries is."""
    from batchrank.models.random_qwen3 import training_words

    median, longest = doc_words
    words = training_words()
    rng = random.Random(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choices(words, k=rng.randint(3, 10)))
        for d in range(docs_per_query):
            n_words = max(shortest, min(longest, int(rng.lognormvariate(math.log(median), 0.45))))
            rows.append({"query_id": f"s{seed}q{q:05d}", "query": query, "doc_id": f"s{seed}q{q:05d}d{d:04d}",
                         "document": " ".join(rng.choices(words, k=n_words))})
    return rows


def fit_documents(rows: list[dict[str, str]], count_tokens: Callable[[list[str]], list[int]],
                  max_model_len: int) -> tuple[list[int], int]:
    """Drop words from the end of a passage until its whole card prompt fits max_model_len, so that every system
    scores the same untruncated prompt (plain vLLM refuses a longer one). Returns the prompt token counts and the
    number of passages shortened."""
    counts = count_tokens([card_prompt(r["query"], r["document"]) for r in rows])
    shortened = 0
    for i, row in enumerate(rows):
        if counts[i] <= max_model_len:
            continue
        shortened += 1
        words = row["document"].split(" ")
        while counts[i] > max_model_len and len(words) > 1:
            words = words[: max(1, len(words) - max(1, (counts[i] - max_model_len) // 2))]
            row["document"] = " ".join(words)
            counts[i] = count_tokens([card_prompt(row["query"], row["document"])])[0]
        if counts[i] > max_model_len:
            raise SystemExit(f"query {row['query_id']} alone does not fit max_model_len {max_model_len}")
    return counts, shortened


def write_pairs(rows: list[dict[str, str]], path: Path) -> Path:
    """The rows as a Parquet file of the four canonical string columns."""
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows, schema={c: pl.String for c in ("query_id", "query", "doc_id", "document")})
    frame.write_parquet(path)
    return path
