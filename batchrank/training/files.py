"""A training file written a batch at a time: Parquet (one row group per batch) or JSON lines, chosen by the
file's name (.parquet; .jsonl or .json), a local path or an object-store URI. It appears whole or not at all
(written to a local file first, then renamed or uploaded: StoragePath.local_staging_file), so a failed run leaves
no half file. Both load with `datasets.load_dataset("parquet" | "json", data_files=...)`."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import polars as pl
import pyarrow.parquet as pq

from batchrank.errors import InputDataError
from batchrank.storage import StoragePath

FileFormat = Literal["parquet", "jsonl"]
_SUFFIXES: dict[str, FileFormat] = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}


def file_format(destination: str | os.PathLike[str] | StoragePath) -> FileFormat:
    """parquet or jsonl, from the name; InputDataError naming the file otherwise (checked before any work)."""
    name = str(destination)
    for suffix, kind in _SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise InputDataError(f"-o {name}: name a .parquet or a .jsonl file (the format follows the name)")


class TrainingFile:
    """`with TrainingFile(path) as file: file.write(frame) ...`; `rows` counts what was written."""

    def __init__(self, destination: str | os.PathLike[str] | StoragePath):
        self.destination = StoragePath.of(destination)
        self.format = file_format(destination)
        self.rows = 0
        self._stack = ExitStack()
        self._writer: Any = None
        self._local: Path | None = None
        self._schema: pl.Schema | None = None

    def __enter__(self) -> TrainingFile:
        self._local = self._stack.enter_context(self.destination.local_staging_file())
        if self.format == "jsonl":
            self._writer = self._stack.enter_context(open(self._local, "wb"))
        return self

    def write(self, frame: pl.DataFrame) -> None:
        """Append rows; every batch has the columns and types of the first."""
        if self._schema is None:
            self._schema = frame.schema
        elif frame.schema != self._schema:
            frame = frame.cast(dict(self._schema))  # e.g. a batch whose lists are all empty
        self.rows += frame.height
        if self.format == "jsonl":
            frame.write_ndjson(self._writer)
            return
        # Plain (large) strings: what every Parquet reader, datasets' included, knows.
        table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._local, table.schema, compression="zstd")
        self._writer.write_table(table)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.format == "parquet" and self._writer is not None:
            self._writer.close()
        self._stack.__exit__(kind, error, traceback)
