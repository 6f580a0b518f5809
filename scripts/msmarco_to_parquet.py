"""Convert MS MARCO passage-ranking TSVs into a batchrank candidates Parquet and TREC qrels.

A batchrank job reads one Parquet of (query, candidate) pairs. MS MARCO ships either
the official ``top1000.dev.tsv`` (qid, pid, query, passage; rows not sorted by score)
or a first-stage run such as Anserini's ``run.msmarco-passage.dev.bm25.tsv``
(qid, pid, rank) whose texts live in ``queries.*.tsv`` and ``collection.tsv``.
Everything goes through lazy polars scans sunk straight to Parquet, so the 8.8M-passage
collection is never materialised as Python objects.

    python scripts/msmarco_to_parquet.py --top1000 top1000.dev.tsv \
        --qrels qrels.dev.small.tsv --out job/ [--max-queries N] [--depth K]
    python scripts/msmarco_to_parquet.py --run run.msmarco-passage.dev.bm25.tsv \
        --queries queries.dev.small.tsv --collection collection.tsv --qrels ... --out job/
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl

COLUMNS = ["query_id", "query", "doc_id", "document", "first_stage_rank"]
INT_COLUMNS = {"first_stage_rank", "grade"}
_ID, _TEXT = r"[^\t]+", r"[^\t]*"


class InputError(Exception):
    """A problem with the user's input files; reported as one line, exit code 2."""


@dataclass(frozen=True)
class Format:
    columns: tuple[str, ...]
    pattern: str  # whole-line regex, so a bad line can be reported with its number
    spec: str  # human-readable layout for error messages
    unique_key: bool = False  # lookup tables: a duplicate id would duplicate candidate rows


TOP1000 = Format(("query_id", "doc_id", "query", "document"),
                 rf"^{_ID}\t{_ID}\t{_TEXT}\t{_TEXT}$", "qid<TAB>pid<TAB>query<TAB>passage")
RUN = Format(("query_id", "doc_id", "first_stage_rank"),
             rf"^{_ID}\t{_ID}\t\d+$", "qid<TAB>pid<TAB>rank")
QUERIES = Format(("query_id", "query"), rf"^{_ID}\t{_TEXT}$", "qid<TAB>query", True)
COLLECTION = Format(("doc_id", "document"), rf"^{_ID}\t{_TEXT}$", "pid<TAB>passage", True)
QRELS = Format(("query_id", "iteration", "doc_id", "grade"),
               rf"^{_ID}\t{_ID}\t{_ID}\t-?\d+$", "qid<TAB>0<TAB>pid<TAB>grade")


def check_file(path: Path, fmt: Format) -> None:
    """Fail on the first malformed line or duplicate id, naming the file and line."""
    lines = pl.scan_lines(path, row_index_name="line_no", row_index_offset=1)
    checks = [lines.filter(~pl.col("line").str.contains(fmt.pattern)).head(1)]
    if fmt.unique_key:
        key = pl.col("line").str.extract(r"^([^\t]*)")
        checks.append(lines.filter(~key.is_first_distinct()).head(1))
    try:
        bad, *dups = pl.collect_all(checks)
    except pl.exceptions.PolarsError as exc:  # e.g. invalid UTF-8
        raise InputError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from None
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(f"{path}:{row['line_no']}: expected {fmt.spec}, got {row['line'][:80]!r}")
    if dups and dups[0].height:
        line_no, line = dups[0].row(0)
        dup_id = line.split("\t", 1)[0]
        raise InputError(f"{path}:{line_no}: duplicate id {dup_id!r}")


def scan(path: Path, fmt: Format) -> pl.LazyFrame:
    schema = {c: pl.Int32 if c in INT_COLUMNS else pl.String for c in fmt.columns}
    # quote_char=None: MS MARCO texts contain bare quotes; empty texts stay "" (not null)
    # so that a null after a join can only mean a missing id.
    return pl.scan_csv(path, separator="\t", has_header=False, quote_char=None,
                       schema=schema, empty_string_is_null=False)


def sniff(path: Path) -> Format:
    """Tell a 4-column top1000 file from a 3-column run file by its first line."""
    with path.open("rb") as f:
        fields = f.readline().count(b"\t") + 1
    if fields not in (3, 4):
        raise InputError(f"{path}:1: expected {TOP1000.spec} or {RUN.spec}, got {fields} field(s)")
    return TOP1000 if fields == 4 else RUN


def candidates(args: argparse.Namespace, fmt: Format) -> pl.LazyFrame:
    lf = scan(args.top1000, fmt).with_row_index("row")
    if fmt is TOP1000:
        # The official file is not sorted by score: its order within a query is the rank.
        rank = pl.col("row").rank("ordinal").over("query_id").cast(pl.Int32)
        lf = lf.with_columns(first_stage_rank=rank)
    lf = lf.with_columns(query_order=pl.col("row").min().over("query_id").rank("dense"))
    # Cut queries and depth before the text joins, so only needed texts are carried.
    if args.max_queries:
        lf = lf.filter(pl.col("query_order") <= args.max_queries)
    if args.depth:
        lf = lf.filter(pl.col("first_stage_rank") <= args.depth)
    if args.queries:
        lf = lf.drop("query", strict=False).join(
            scan(args.queries, QUERIES), on="query_id", how="left")
    if args.collection:
        lf = lf.drop("document", strict=False).join(
            scan(args.collection, COLLECTION), on="doc_id", how="left")
    return lf.sort("query_order", "first_stage_rank", "row").select(COLUMNS)


def write_qrels(qrels_tsv: Path, cand_path: Path, out: Path) -> int:
    """Write TREC qrels for the job's queries (so a --max-queries job evaluates
    consistently); return the number of judged queries."""
    qids = pl.scan_parquet(cand_path).select(pl.col("query_id").unique()).collect()["query_id"]
    # qrels are small (~60k lines), so collecting them is fine.
    qrels = scan(qrels_tsv, QRELS).filter(pl.col("query_id").is_in(qids.implode())).collect()
    qrels.write_csv(out, separator=" ", include_header=False, quote_style="never")
    return qrels["query_id"].n_unique()


def convert(args: argparse.Namespace) -> str:
    for path in (args.top1000, args.queries, args.collection, args.qrels):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: file not found")
    fmt = sniff(args.top1000)
    if fmt is RUN and not (args.queries and args.collection):
        raise InputError(f"{args.top1000}: a qid/pid/rank run needs --queries and --collection")
    for path, path_fmt in ((args.top1000, fmt), (args.queries, QUERIES),
                           (args.collection, COLLECTION), (args.qrels, QRELS)):
        if path is not None:
            check_file(path, path_fmt)

    args.out.mkdir(parents=True, exist_ok=True)
    cand_path = args.out / "candidates.parquet"
    candidates(args, fmt).sink_parquet(cand_path)
    stats = pl.scan_parquet(cand_path).select(
        queries=pl.col("query_id").n_unique(), pairs=pl.len(),
        no_query=pl.col("query_id").filter(pl.col("query").is_null()).first(),
        no_doc=pl.col("doc_id").filter(pl.col("document").is_null()).first(),
    ).collect().row(0, named=True)
    # A candidate without text means the lookup files don't match the run; don't leave it behind.
    for key, path, what in (("no_query", args.queries, "qid"), ("no_doc", args.collection, "pid")):
        if stats[key] is not None:
            cand_path.unlink()
            raise InputError(f"{path}: no text for {what} {stats[key]!r} of {args.top1000}")

    summary = [f"queries: {stats['queries']}", f"pairs: {stats['pairs']}",
               f"mean candidates/query: {stats['pairs'] / max(stats['queries'], 1):.1f}"]
    outputs = [f"candidates: {cand_path}"]
    if args.qrels:
        qrels_path = args.out / "qrels.txt"
        summary.append(f"judged queries: {write_qrels(args.qrels, cand_path, qrels_path)}")
        outputs.append(f"qrels: {qrels_path}")
    return "\n".join(summary + outputs)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top1000", "--run", type=Path, required=True,
                   help="top1000 TSV (qid, pid, query, passage) or run TSV (qid, pid, rank)")
    p.add_argument("--queries", type=Path, help="qid<TAB>query; replaces top1000 query texts")
    p.add_argument("--collection", type=Path, help="pid<TAB>passage; replaces top1000 passages")
    p.add_argument("--qrels", type=Path, help="official qrels: qid<TAB>0<TAB>pid<TAB>grade")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--max-queries", type=positive_int, help="keep the first N queries")
    p.add_argument("--depth", type=positive_int, help="keep the top K candidates per query")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(convert(args))
    except (InputError, pl.exceptions.PolarsError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
