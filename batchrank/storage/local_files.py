"""Listing a local directory fast: os.scandir, one stat per file and none for its type, no path object per entry
(a listing of 50,000 parts is on every resume's path)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from batchrank.storage.atomic import TEMPORARY_MARK


def walk(directory: Path, recursive: bool) -> Iterator[tuple[str, str, int, int]]:
    """(path, name, size, modification time in ns) of each regular file in `directory` (and below, if recursive);
    nothing for a missing directory."""
    try:
        entries = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            try:
                if entry.is_file():
                    stat = entry.stat()
                    yield entry.path, entry.name, stat.st_size, stat.st_mtime_ns
                elif recursive and entry.is_dir(follow_symlinks=False):
                    yield from walk(Path(entry.path), recursive)
            except FileNotFoundError:
                continue  # removed while listed (a temporary renamed into place)


def matching(directory: Path, suffix: str, recursive: bool) -> Iterator[tuple[str, str, int, int]]:
    """walk's files whose name ends with `suffix`, without the temporaries of writes under way or killed."""
    for path, name, size, mtime in walk(directory, recursive):
        if name.endswith(suffix) and TEMPORARY_MARK not in name:
            yield path, name, size, mtime
