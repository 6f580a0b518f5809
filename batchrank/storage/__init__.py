"""Where bytes live: local paths and object-store URIs (s3://, gs://) behind one path type, StoragePath.

No module outside this package asks whether a path is local or remote: it calls StoragePath's methods.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchrank.errors import StorageError
from batchrank.storage.atomic import TEMPORARY_MARK
from batchrank.storage.filesystems import describe_error
from batchrank.storage.listing import data_files, glob, glob_base
from batchrank.storage.path import FileInfo, StoragePath

__all__ = ["FileInfo", "StoragePath", "TEMPORARY_MARK", "data_files", "describe_error", "glob", "glob_base",
           "install_directory", "reaching"]


@contextmanager
def reaching(location: StoragePath | str) -> Iterator[None]:
    """Turn an object store's OSError into a StorageError (exit 2) naming the URI. Local paths: unchanged."""
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        if not StoragePath.is_uri(str(location)):
            raise
        raise StorageError(describe_error(str(location), error)) from None


def install_directory(source: Path, destination: StoragePath) -> None:
    """Copy a local directory tree to `destination` (a local path) so that it appears whole or not at all: every
    file fsynced in a temporary directory beside it, which is then renamed into place."""
    target = Path(destination.os_path())
    temporary = target.with_name(f".{target.name}{TEMPORARY_MARK}{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        shutil.copytree(source, temporary)
        for path in sorted(temporary.rglob("*")):
            if path.is_file():
                with open(path, "rb+") as handle:
                    os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
