"""Finished outputs to mine and export teacher labels from, without an engine: a scattered input file (queries'
rows interleaved, so input order is not query order) and an output of its pairs written in the output layout
(tests/output_fixtures.make_output), with input_row, and with or without the texts kept."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import polars as pl

from batchrank.io.input import open_input
from batchrank.spec import InputSpec
from output_fixtures import make_output, write_lines

QUERIES, DOCS = 12, 15


def scattered_input(root: Path, seed: int = 3) -> tuple[Path, pl.DataFrame]:
    """QUERIES x DOCS pairs with texts, shuffled; returns the file and its rows with input_row."""
    rng = random.Random(seed)
    rows = [{"query_id": f"q{q:02d}", "query": f"query number {q}", "doc_id": f"d{q:02d}-{d:02d}",
             "document": f"passage {d} for query {q} " + "word " * rng.randint(1, 30)}
            for q in range(QUERIES) for d in range(DOCS)]
    rng.shuffle(rows)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "input.parquet"
    frame = pl.DataFrame(rows)
    frame.write_parquet(path)
    return path, frame.with_row_index("input_row").with_columns(pl.col("input_row").cast(pl.Int64))


def finished_output(root: Path, source: Path, rows: pl.DataFrame, keep_texts: bool, score: str | None = None,
                    seed: int = 5) -> Path:
    """An output of `rows` (queries in order of their number, random scores; the same for the same seed), keeping
    input_row and, with keep_texts, query and document. `score`: run.json's model.score."""
    rng = random.Random(seed)
    ordered = rows.sort("query_id", "input_row")
    scored = [{"query_id": r["query_id"], "doc_id": r["doc_id"], "score": rng.uniform(-8, 8),
               **({"query": r["query"], "document": r["document"]} if keep_texts else {}),
               "input_row": r["input_row"]} for r in ordered.iter_rows(named=True)]
    files = open_input(InputSpec(path=str(source)))
    out = make_output(root, scored, queries_per_chunk=5, input_path=str(source),
                      input_files=[[str(f.path), f.size, f.footer_sha256] for f in files.files])
    if score is not None:
        run_info = json.loads((out / "run.json").read_text())
        run_info["model"]["score"] = score
        (out / "run.json").write_text(json.dumps(run_info))
    return out


def qrels_file(root: Path, rows: pl.DataFrame) -> Path:
    """Two positives for most queries (grade 1 and 2), none for the last; a judged query absent from the output."""
    lines = []
    for q in range(QUERIES - 1):
        lines += [f"q{q:02d} 0 d{q:02d}-{(q * 3) % DOCS:02d} 2", f"q{q:02d} 0 d{q:02d}-{(q * 7 + 1) % DOCS:02d} 1"]
    lines.append("q99 0 d99-00 1")
    return write_lines(root / "qrels.txt", lines)


def read_any(path: Path) -> list[dict[str, Any]]:
    return (pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path)).to_dicts()
