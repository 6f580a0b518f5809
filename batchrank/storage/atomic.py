"""Writes that a reader sees whole or not at all.

A local file is written to a temporary name beside it (`.NAME.tmp-PID`), fsynced and renamed into place, and its
directory fsynced; on any error the temporary is removed and the old file stays. An object is written in one upload,
which the store makes visible whole at the end or not at all, so objects leave no temporaries behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pyarrow.fs as pafs

TEMPORARY_MARK = ".tmp-"  # `.NAME.tmp-PID`: a file being written; never read as a result


def temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")


@contextmanager
def local_writer(path: Path) -> Iterator[BinaryIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        with open(temporary, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


@contextmanager
def object_writer(filesystem: pafs.FileSystem, key: str) -> Iterator[BinaryIO]:
    buffer = BytesIO()
    yield buffer
    # pyarrow cannot abort an upload: an interrupt between opening the stream and the one write completes an empty
    # object, which every reader of batchrank's files takes as damaged (a part is scored again).
    # compression=None: the bytes as given (pyarrow would gzip a `.gz` key, a local file gets them as they are).
    with filesystem.open_output_stream(key, compression=None) as stream:
        stream.write(buffer.getbuffer())


@contextmanager
def local_staging(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)


@contextmanager
def object_staging(filesystem: pafs.FileSystem, key: str, name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="batchrank-staging-") as scratch:
        local = Path(scratch) / name
        yield local
        # Streamed (multipart) upload: whole at the end. (An interrupt in the middle completes what was sent; its
        # one user, the staged copy of the input, is written before job.json, so a stopped run stages again.)
        with open(local, "rb") as reader, filesystem.open_output_stream(key, compression=None) as writer:
            shutil.copyfileobj(reader, writer, length=8 << 20)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (a power loss after it cannot bring the old file back)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself has happened
    finally:
        os.close(descriptor)
