"""Hive partition directories (`date=2026-12-01/`) of input files: values that `output.keep_columns` may keep.

A file's partition values are the `name=value` directories between the input's root (the directory given, or a
glob's fixed prefix) and the file, as Hive, Spark and pyarrow's datasets write them: the value URL-decoded, Hive's
`__HIVE_DEFAULT_PARTITION__` a null. They are kept as text, exactly as the path spells them (`hour=07` stays "07").
"""

from __future__ import annotations

from urllib.parse import unquote

import polars as pl

from batchrank.storage import StoragePath

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
FILE_COLUMN = "__batchrank_input_file"  # the source file of each row in a scan, while partition values are added

Partition = tuple[tuple[str, str | None], ...]


def partition_values(path: StoragePath, root: StoragePath) -> Partition:
    """The `name=value` directories of `path` below `root`, in path order (a deeper one wins a repeated name)."""
    text, prefix = str(path), str(root).rstrip("/")
    if not text.startswith(prefix + "/"):
        return ()
    values: dict[str, str | None] = {}
    for segment in text[len(prefix) + 1 :].split("/")[:-1]:
        name, separator, value = segment.partition("=")
        if separator and name:
            values[name] = None if value == HIVE_NULL else unquote(value)
    return tuple(values.items())


def add_partition_columns(frame: pl.LazyFrame, sources: list[str], partitions: list[Partition],
                          columns: tuple[str, ...]) -> pl.LazyFrame:
    """A scan that carries FILE_COLUMN (each row's source, as given to the scan) with `columns` filled in from the
    partition values of its file; FILE_COLUMN dropped."""
    values = [dict(partition) for partition in partitions]
    filled = [pl.col(FILE_COLUMN).replace_strict(sources, [v.get(name) for v in values], return_dtype=pl.String)
              .alias(name) for name in columns]
    return frame.with_columns(filled).drop(FILE_COLUMN)


def literal_columns(partition: Partition, columns: tuple[str, ...]) -> list[pl.Expr]:
    """`columns` as constants of one file's partition values (a read of that file's rows)."""
    values = dict(partition)
    return [pl.lit(values.get(name), dtype=pl.String).alias(name) for name in columns]
