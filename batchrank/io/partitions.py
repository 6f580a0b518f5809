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

Partition = tuple[tuple[str, str | None], ...]


def partition_values(path: StoragePath, root: StoragePath) -> Partition:
    """The `name=value` directories of `path` below `root`, in path order (a deeper one wins a repeated name)."""
    text, prefix = str(path), str(root).rstrip("/")
    if prefix == "." and not text.startswith("/"):
        relative = text  # pathlib spells ./x as x
    elif text.startswith(prefix + "/"):
        relative = text[len(prefix) + 1 :]
    else:
        return ()
    values: dict[str, str | None] = {}
    for segment in relative.split("/")[:-1]:
        name, separator, value = segment.partition("=")
        if separator and name:
            values[name] = None if value == HIVE_NULL else unquote(value)
    return tuple(values.items())


def literal_columns(partition: Partition, columns: tuple[str, ...]) -> list[pl.Expr]:
    """`columns` as constants of one file's partition values (a read of that file's rows)."""
    values = dict(partition)
    return [pl.lit(values.get(name), dtype=pl.String).alias(name) for name in columns]
