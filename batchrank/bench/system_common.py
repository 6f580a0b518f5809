"""What every system of the throughput bench shares in its own process: the result line it prints, the scores it
writes, the prompt texts it reads, and the loop over its datasets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchrank.bench.anchor_prompt import card_prompt

RESULT_MARK = "BENCH_RESULT "  # a system's stdout line: this mark + JSON of everything it measured so far
Emit = Callable[[dict[str, Any]], None]


def device_is_cpu() -> bool:
    """True when torch sees no CUDA device (imports torch: call it in a system's process only)."""
    import torch

    return not torch.cuda.is_available()


def write_scores(config: dict[str, Any], system: str, dataset: str, ids: Any, scores: Any) -> str:
    """WORK/scores/SYSTEM-DATASET.parquet: (query_id, doc_id, score) in input order; returns its path."""
    import polars as pl

    path = Path(config["work"]) / "scores" / f"{system}-{dataset}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    ids.select("query_id", "doc_id").with_columns(score=pl.Series(scores, dtype=pl.Float64)).write_parquet(path)
    return str(path)


def pair_texts(path: str, limit: int = 0) -> tuple[Any, list[str]]:
    """A dataset's pairs (the first `limit`, 0: all) and their model card prompt texts, in input order."""
    import polars as pl

    pairs = pl.read_parquet(path)  # input order: grouped by query, as MS MARCO candidates come
    if limit:
        pairs = pairs.head(limit)
    return pairs, [card_prompt(q, d) for q, d in zip(pairs["query"], pairs["document"], strict=True)]


def each_dataset(config: dict[str, Any], system: str, emit: Emit, result: dict[str, Any],
                 score_one: Callable[[str, str], dict[str, Any]]) -> None:
    """score_one(name, pairs path) for every dataset of this system; a failed dataset is recorded, not fatal. The
    result is emitted after each dataset (score_one may emit more often), so a run cut short keeps what it measured."""
    result["datasets"] = {}
    for name in config["systems"][system]:
        try:
            result["datasets"][name] = score_one(name, config["datasets"][name])
        except Exception as error:  # noqa: BLE001 - reported in the table; the other datasets still run
            logging.exception("%s on %s failed", system, name)
            result["datasets"][name] = {"failed": True, "reason": f"{type(error).__name__}: {error}"[:300]}
        emit(result)
