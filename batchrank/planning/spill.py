"""Local scratch space for work that must not hold the input in memory: frames spilled into partition files and
read back one partition at a time (the disk side of an external sort and of a partitioned duplicate check).

Scratch lives in a directory under TMPDIR (local disk, whatever storage the input and output are on) and is
removed with it. Partitions are Arrow IPC streams compressed with LZ4: written and read at memory speed, never a
result anyone else reads.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from batchrank.planning.background import SerialWriter

_IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4")


@contextmanager
def scratch_directory(prefix: str = "batchrank-plan-") -> Iterator[Path]:
    """A fresh directory under TMPDIR, removed with everything in it when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=os.environ.get("TMPDIR")) as directory:
        yield Path(directory)


def compact_arrow(frame: pl.DataFrame) -> pa.Table:
    """The frame as Arrow with its text copied into plain (large) strings of its own: a polars string taken from a
    batch (a slice, a filter, a group-by's `first`) is a view into the whole batch's buffers, which would go along
    into every partition file, or stay alive in memory."""
    table = frame.to_arrow()
    fields = [pa.field(f.name, pa.large_string()) if pa.types.is_string_view(f.type) or pa.types.is_string(f.type)
              else f for f in table.schema]
    return table.cast(pa.schema(fields))


class FrameSpill:
    """Frames appended to `partitions` files under `directory`, each partition's rows kept in append order."""

    def __init__(self, directory: Path, partitions: int, name: str = "part", writes_queued: int = 0):
        self.directory, self.partitions, self.name = directory, partitions, name
        directory.mkdir(parents=True, exist_ok=True)
        self._writers: dict[int, ipc.RecordBatchStreamWriter] = {}
        self._files: dict[int, object] = {}
        self.rows = np.zeros(partitions, dtype=np.int64)
        self.bytes = np.zeros(partitions, dtype=np.int64)  # of the Arrow tables appended (their size in memory)
        # With `writes_queued`, the compression and writes run on a thread of their own, that many tables behind.
        self._worker = SerialWriter(pending=writes_queued) if writes_queued else None

    def path(self, index: int) -> Path:
        return self.directory / f"{self.name}-{index:05d}.arrows"

    def append(self, frame: pl.DataFrame, partition: np.ndarray) -> None:
        """Each row of `frame` to the partition its `partition` entry names (0 <= entry < partitions)."""
        if frame.height == 0:
            return
        # (a stable sort of 16-bit keys is a radix sort: a tenth of the time of one of 64-bit keys)
        order = np.argsort(partition.astype(np.uint16) if self.partitions <= 1 << 16 else partition, kind="stable")
        counts = np.bincount(partition, minlength=self.partitions)
        table = compact_arrow(frame[order] if (np.diff(order) != 1).any() else frame)
        start = 0
        for index in np.flatnonzero(counts):
            self.append_to(int(index), table.slice(start, int(counts[index])))
            start += int(counts[index])

    def append_to(self, index: int, table: pa.Table | pl.DataFrame) -> None:
        if isinstance(table, pl.DataFrame):
            table = compact_arrow(table)
        self.rows[index] += table.num_rows
        self.bytes[index] += table.nbytes
        if self._worker is not None:
            self._worker.submit(self._write, index, table)
        else:
            self._write(index, table)

    def _write(self, index: int, table: pa.Table) -> None:
        writer = self._writers.get(index)
        if writer is None:
            handle = open(self.path(index), "wb")  # noqa: SIM115 - closed in close()
            writer = ipc.new_stream(handle, table.schema, options=_IPC_OPTIONS)
            self._writers[index], self._files[index] = writer, handle
        writer.write_table(table)

    def finish(self, index: int) -> None:
        """Close one partition's file (nothing more is appended to it), so that it can be read already."""
        if self._worker is not None:
            self._worker.flush()
        writer = self._writers.pop(index, None)
        if writer is not None:
            writer.close()
            self._files.pop(index).close()  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        for index in list(self._writers):
            self.finish(index)

    def read_arrow(self, index: int) -> pa.Table | None:
        """One partition's rows in append order, as Arrow (None: nothing was written to it)."""
        if not self.rows[index]:
            return None
        with open(self.path(index), "rb") as handle:
            return ipc.open_stream(handle).read_all()

    def read(self, index: int) -> pl.DataFrame | None:
        """One partition's rows in append order (None: nothing was written to it)."""
        table = self.read_arrow(index)
        frame = None if table is None else pl.from_arrow(table)
        assert frame is None or isinstance(frame, pl.DataFrame)
        return frame

    def arrow_batches(self, index: int) -> Iterator[pa.RecordBatch]:
        """One partition's rows in append order, batch by batch as they were appended."""
        if not self.rows[index]:
            return
        with open(self.path(index), "rb") as handle:
            for batch in ipc.open_stream(handle):
                if batch.num_rows:  # a table's empty chunk is written as an empty batch
                    yield batch

    def batches(self, index: int) -> Iterator[pl.DataFrame]:
        """One partition's rows in append order, batch by batch as they were appended."""
        for batch in self.arrow_batches(index):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame

    def remove(self, index: int) -> None:
        self.path(index).unlink(missing_ok=True)
