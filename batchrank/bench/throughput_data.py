"""The throughput bench's datasets: synthetic MS MARCO-shaped pairs of DOCS_PER_QUERY:QUERIES, made once in WORK/data
and reused while their file exists, with the stats the report prints (prompt tokens, passages shortened to fit)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from batchrank.bench.models import ensure_model
from batchrank.bench.synthetic import fit_documents, synthetic_pairs, write_pairs
from batchrank.bench.tokens import token_counter

WARMUP_PAIRS = 256  # other pairs (the next seed) every engine scores before the clock starts


def parse_datasets(text: str) -> list[tuple[int, int]]:
    """DOCS_PER_QUERY:QUERIES,... (an argparse type)."""
    shapes = []
    for item in filter(None, text.split(",")):
        docs, _, queries = item.partition(":")
        if not (docs.isdigit() and queries.isdigit() and int(docs) > 0 and int(queries) > 0):
            raise argparse.ArgumentTypeError(f"{item!r}: expected DOCS_PER_QUERY:QUERIES, e.g. 100:1000")
        shapes.append((int(docs), int(queries)))
    if not shapes:
        raise argparse.ArgumentTypeError("no dataset given")
    return shapes


def dataset_name(docs: int, queries: int) -> str:
    """A dataset's name in the report: DOCSxQUERIES."""
    return f"{docs}x{queries}"




def prepare_dataset(work: Path, model_dir: Path, docs: int, queries: int, seed: int, args: argparse.Namespace,
                    limit: int = 0) -> dict[str, Any]:
    """The pairs of one dataset in WORK/data (reused when written before with the same settings), and their stats."""
    median, longest = args.doc_words
    stem = f"pairs-{docs}x{queries}-seed{seed}-words{median}-{longest}-len{args.max_model_len}"
    stem += f"-first{limit}" if limit else ""
    path, stats_path = work / "data" / f"{stem}.parquet", work / "data" / f"{stem}.json"
    if path.is_file() and stats_path.is_file():
        return json.loads(stats_path.read_text())
    rows = synthetic_pairs(queries, docs, seed, args.doc_words)
    rows = rows[:limit] if limit else rows
    counts, shortened = fit_documents(rows, token_counter(model_dir), args.max_model_len)
    write_pairs(rows, path)
    stats = {"name": dataset_name(docs, queries), "docs_per_query": docs, "queries": queries, "seed": seed,
             "pairs": len(rows), "prompt_tokens": sum(counts), "mean_prompt_tokens": sum(counts) / len(rows),
             "max_prompt_tokens": max(counts), "shortened_documents": shortened, "doc_words": [median, longest],
             "path": str(path)}
    stats_path.write_text(json.dumps(stats, indent=1))
    return stats


def prepare_all(args: argparse.Namespace) -> tuple[Path, Path, dict[str, dict[str, Any]], dict[str, Any]]:
    """The work directory, the model (--model, or --shape built in --work), each --datasets dataset by name (with
    --seed, --doc-words, --max-model-len) and the warm-up pairs; each dataset's line printed."""
    work = Path(args.work).resolve()
    model_dir = Path(args.model).resolve() if args.model else ensure_model(work, args.shape, args.device)
    data = {dataset_name(d, q): prepare_dataset(work, model_dir, d, q, args.seed, args) for d, q in args.datasets}
    for name, d in data.items():
        print(f"data {name}: {d['pairs']:,} pairs, {d['mean_prompt_tokens']:.1f} prompt tokens a pair (max "
              f"{d['max_prompt_tokens']}), {d['shortened_documents']} passages shortened; {d['path']}", flush=True)
    docs = args.datasets[0][0]
    warmup = prepare_dataset(work, model_dir, docs, -(-WARMUP_PAIRS // docs), args.seed + 1, args, WARMUP_PAIRS)
    return work, model_dir, data, warmup
