"""Qrels (relevance judgments) from TREC text or Parquet, checked line by line: ids as strings, grades as ints."""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batchrank import storage
from batchrank.errors import InputDataError
from batchrank.storage import StoragePath


@dataclass(frozen=True)
class Qrels:
    path: str
    frame: pl.DataFrame  # query_id, doc_id (strings), relevance (Int64)


def read_qrels(path: str | os.PathLike[str] | StoragePath) -> Qrels:
    """TREC qrels (`qid 0 docid grade`, whitespace separated, .gz allowed) or Parquet (query_id, doc_id, relevance),
    from a local path or an s3:// / gs:// URI."""
    path = StoragePath.of(path)
    with storage.reaching(path):  # a store's error names the URI and its likely cause
        try:
            data = path.read_bytes()  # qrels are small (a judgment is a few bytes) and read whole either way
        except FileNotFoundError:
            path.check_bucket()
            raise InputDataError(
                f"qrels {path}: no such file (for a job spec's eval.qrels: write it, or --set eval.qrels=null)"
            ) from None
        except OSError as error:
            if StoragePath.is_uri(str(path)):
                raise
            raise InputDataError(f"qrels {path}: cannot read it ({error})") from None
    frame = _read_parquet_qrels(path, data) if data[:4] == b"PAR1" else _read_trec_qrels(path, data)
    if frame.height == 0:
        raise InputDataError(f"qrels {path}: holds no judgments")
    return Qrels(str(path), frame)


def _read_trec_qrels(path: StoragePath, data: bytes) -> pl.DataFrame:
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputDataError(f"qrels {path}: not a readable gzip file ({error})") from None
    query_ids, doc_ids, grades, seen = [], [], [], {}
    with io.BytesIO(data) as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise InputDataError(f"qrels {path} line {number}: not UTF-8 text") from None
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                # More fields than four: most likely an id with whitespace, which the format cannot hold.
                hint = ("; an id with whitespace cannot be written in TREC text: use Parquet qrels (query_id, doc_id, "
                        "relevance)") if len(fields) > 4 else ""
                raise InputDataError(
                    f"qrels {path} line {number}: expected 4 fields 'query_id 0 doc_id grade', "
                    f"got {len(fields)}: {line[:80]!r}{hint}"
                )
            try:
                grade = int(fields[3])
            except ValueError:
                raise InputDataError(f"qrels {path} line {number}: grade {fields[3]!r} is not an integer") from None
            key = (fields[0], fields[2])
            if key in seen:
                raise InputDataError(
                    f"qrels {path} line {number}: query {key[0]!r} doc {key[1]!r} is judged twice "
                    f"(first on line {seen[key]})"
                )
            seen[key] = number
            query_ids.append(fields[0])
            doc_ids.append(fields[2])
            grades.append(grade)
    return pl.DataFrame(
        {"query_id": query_ids, "doc_id": doc_ids, "relevance": grades},
        schema={"query_id": pl.String, "doc_id": pl.String, "relevance": pl.Int64},
    )


def _read_parquet_qrels(path: StoragePath, data: bytes) -> pl.DataFrame:
    try:
        frame = pl.from_arrow(pq.read_table(pa.BufferReader(data)))
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a broken file
        raise InputDataError(f"qrels {path}: not a readable Parquet file ({error})") from None
    missing = [c for c in ("query_id", "doc_id", "relevance") if c not in frame.columns]
    if missing:
        raise InputDataError(f"qrels {path}: missing column(s) {missing}; the file has {frame.columns}")
    if not (frame["relevance"].dtype.is_integer() or frame["relevance"].dtype == pl.Boolean):
        raise InputDataError(f"qrels {path}: column 'relevance' has type {frame['relevance'].dtype}; expected integer")
    frame = frame.select(
        pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String), pl.col("relevance").cast(pl.Int64)
    )
    nulls = frame.with_row_index("row").filter(pl.any_horizontal(pl.all().is_null()))
    if nulls.height:
        raise InputDataError(f"qrels {path} row {nulls['row'][0]}: null query_id, doc_id or relevance")
    repeated = frame.with_row_index("row").filter(~pl.struct("query_id", "doc_id").is_first_distinct())
    if repeated.height:
        row = repeated.row(0, named=True)
        raise InputDataError(
            f"qrels {path} row {row['row']}: query {row['query_id']!r} doc {row['doc_id']!r} is judged twice"
        )
    return frame
