"""StoragePath: one path type for a local file and for an object in a store (s3://bucket/key, gs://bucket/key).

Everything batchrank reads or writes goes through it, so no other module asks where bytes live. It has the pathlib
methods batchrank uses (`/`, name, parent, exists, read_text, unlink, ...) plus the ones a job needs: atomic
writes, one-request listings, globs, and the pyarrow filesystem and polars options to read Parquet with.

Atomic writes are atomic.py's; globs over many files, listing.py's.
"""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs

from batchrank.errors import StorageError
from batchrank.storage import atomic, filesystems, local_files
from batchrank.storage.atomic import TEMPORARY_MARK
from batchrank.storage.globbing import glob_picks


@dataclass(frozen=True)
class FileInfo:
    exists: bool
    is_file: bool
    size: int
    mtime_ns: int


class StoragePath:
    """A local path or an object-store URI. Build one with StoragePath.of(text)."""

    __slots__ = ("_local", "scheme", "bucket", "key")

    def __init__(self, local: Path | None, scheme: str = "file", bucket: str = "", key: str = ""):
        self._local, self.scheme, self.bucket, self.key = local, scheme, bucket, key

    @classmethod
    def of(cls, location: str | os.PathLike[str] | StoragePath) -> StoragePath:
        if isinstance(location, StoragePath):
            return location
        text = os.fspath(location)
        scheme, separator, rest = text.partition("://")
        if not separator or scheme.lower() not in filesystems.SCHEMES:
            return cls(Path(text))
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"{text!r} is not an object-store URI (s3://bucket/key or gs://bucket/key)")
        return cls(None, scheme.lower(), bucket, "/".join(p for p in key.split("/") if p and p != "."))

    @staticmethod
    def is_uri(text: str) -> bool:
        scheme, separator, _ = text.partition("://")
        return bool(separator) and scheme.lower() in filesystems.SCHEMES

    # --- names ------------------------------------------------------------------------------------------------------

    def __str__(self) -> str:
        if self._local is not None:
            return str(self._local)
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"

    def __repr__(self) -> str:
        return f"StoragePath({str(self)!r})"

    def _identity(self) -> tuple[str, ...]:
        if self._local is not None:
            return ("file", str(self._local))
        return (filesystems.canonical_scheme(self.scheme), self.bucket, self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoragePath) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __lt__(self, other: StoragePath) -> bool:
        return str(self) < str(other)

    def __truediv__(self, name: str) -> StoragePath:
        if self._local is not None:
            return StoragePath(self._local / name)
        if ".." in str(name).split("/"):
            raise ValueError(f"{name!r}: '..' has no meaning in an object key")
        return StoragePath.of(f"{self}/{name}")

    @property
    def name(self) -> str:
        return self._local.name if self._local is not None else PurePosixPath(self.key).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> StoragePath:
        if self._local is not None:
            return StoragePath(self._local.parent)
        parent = str(PurePosixPath(self.key).parent)
        return StoragePath(None, self.scheme, self.bucket, "" if parent == "." else parent)

    def with_name(self, name: str) -> StoragePath:
        return self.parent / name

    def absolute(self) -> StoragePath:
        """A local path made absolute (symlinks resolved); a URI is absolute already."""
        return StoragePath(self._local.resolve()) if self._local is not None else self

    def is_relative_to(self, other: StoragePath) -> bool:
        """Whether this is `other` or lies under it (whole segments, not string prefixes)."""
        if self._local is not None or other._local is not None:
            if self._local is None or other._local is None:
                return False
            return self._local.resolve().is_relative_to(other._local.resolve())
        if self._identity()[:2] != other._identity()[:2]:
            return False
        return not other.key or self.key == other.key or self.key.startswith(other.key + "/")

    # --- the filesystem behind it ---------------------------------------------------------------------------------

    @property
    def filesystem(self) -> pafs.FileSystem:
        if self._local is not None:
            return filesystems.LOCAL
        return filesystems.object_filesystem(self.scheme, self.bucket)

    @property
    def filesystem_path(self) -> str:
        """The path as the pyarrow filesystem names it (absolute local path, or bucket/key)."""
        if self._local is not None:
            return str(self._local.absolute())
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    @property
    def supports_posix_locks(self) -> bool:
        """fcntl locks work here (a local or mounted file system); an object store has none."""
        return self._local is not None

    def os_path(self) -> str:
        """The operating system's path (for fcntl); only where supports_posix_locks."""
        if self._local is None:
            raise TypeError(f"{self} is an object, not a file of this machine")
        return str(self._local)

    def polars_source(self) -> tuple[str, dict[str, str] | None]:
        """What pl.scan_parquet takes for this file: a path, or a URI with the environment's store settings."""
        if self._local is not None:
            return str(self._local), None
        return str(self), filesystems.polars_storage_options(self.scheme)

    # --- queries ----------------------------------------------------------------------------------------------------

    def info(self) -> FileInfo:
        if self._local is not None:
            try:
                stat = self._local.stat()
            except FileNotFoundError:
                return FileInfo(False, False, 0, 0)
            return FileInfo(True, self._local.is_file(), stat.st_size, stat.st_mtime_ns)
        info = self.filesystem.get_file_info(self.filesystem_path)
        if info.type == pafs.FileType.NotFound:
            return FileInfo(False, False, 0, 0)
        return FileInfo(True, info.type == pafs.FileType.File, info.size or 0, info.mtime_ns or 0)

    def exists(self) -> bool:
        return self.info().exists

    def is_file(self) -> bool:
        return self.info().is_file

    def is_dir(self) -> bool:
        info = self.info()
        return info.exists and not info.is_file

    def check_bucket(self) -> None:
        """For a URI whose object was not found: a StorageError when the bucket itself is missing (a typo)."""
        if self._local is None and not StoragePath(None, self.scheme, self.bucket).exists():
            raise StorageError(f"{self}: the bucket {self.bucket!r} does not exist")

    # --- reading ----------------------------------------------------------------------------------------------------

    def read_bytes(self) -> bytes:
        if self._local is not None:
            return self._local.read_bytes()
        # A random-access file reads the whole object in one GET; an input stream asks in pieces of a few 100 KiB.
        with self.filesystem.open_input_file(self.filesystem_path) as handle:
            return handle.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open_input_file(self) -> pa.NativeFile:
        """A random-access file (Parquet footers and row groups)."""
        return self.filesystem.open_input_file(self.filesystem_path)

    # --- writing ----------------------------------------------------------------------------------------------------

    def mkdir(self) -> None:
        """Create the directory and its parents; an object store has no directories, so nothing to do there."""
        if self._local is not None:
            self._local.mkdir(parents=True, exist_ok=True)

    def atomic_writer(self) -> AbstractContextManager[BinaryIO]:
        """A binary handle whose bytes become this file when the block ends; if the block raises, this file is left
        as it was and nothing half-written remains (a full disk leaves no temporary behind)."""
        if self._local is None:
            return atomic.object_writer(self.filesystem, self.filesystem_path)
        return atomic.local_writer(self._local)

    def write_bytes(self, data: bytes | memoryview) -> None:
        """Atomic: a reader sees the previous content or the new one, never part of it."""
        with self.atomic_writer() as handle:
            handle.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def local_staging_file(self) -> AbstractContextManager[Path]:
        """A local file to write a large output into (e.g. a sorted copy), which becomes this file atomically when
        the block ends: renamed into place beside it, or uploaded in one streamed upload."""
        if self._local is None:
            return atomic.object_staging(self.filesystem, self.filesystem_path, self.name)
        return atomic.local_staging(self._local)

    def unlink(self, missing_ok: bool = False) -> None:
        if self._local is not None:
            self._local.unlink(missing_ok=missing_ok)
            return
        try:
            self.filesystem.delete_file(self.filesystem_path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def delete_tree(self) -> None:
        """Remove a directory and everything under it (every object under a prefix); a missing one is fine."""
        if self._local is not None:
            shutil.rmtree(self._local, ignore_errors=True)
            return
        try:
            self.filesystem.delete_dir(self.filesystem_path)
        except FileNotFoundError:
            pass

    def remove_temporaries(self) -> None:
        """Delete the temporary files of killed runs directly in this directory (objects never have any)."""
        if self._local is not None and self._local.is_dir():
            for stale in self._local.glob(f".*{TEMPORARY_MARK}*"):
                stale.unlink(missing_ok=True)

    # --- listing ----------------------------------------------------------------------------------------------------

    def list_files(self, suffix: str = "", recursive: bool = True) -> list[tuple[StoragePath, int]]:
        """Every file under this directory whose name ends with `suffix`, with its size, sorted; one listing request
        for a store. Temporary files of killed runs are left out."""
        return [(path, info.size) for path, info in self.list_infos(suffix, recursive)]

    def list_infos(self, suffix: str = "", recursive: bool = True) -> list[tuple[StoragePath, FileInfo]]:
        """Like list_files, with each file's size and modification time as the listing gives them (one stat per
        local file; a store's listing pages carry both, so still no request per file)."""
        if self._local is not None:
            found = [(StoragePath(Path(path)), FileInfo(True, True, size, mtime))
                     for path, _, size, mtime in local_files.matching(self._local, suffix, recursive)]
            return sorted(found, key=lambda item: str(item[0]))
        selector = pafs.FileSelector(self.filesystem_path, allow_not_found=True, recursive=recursive)
        found = [(StoragePath.of(f"{self.scheme}://{info.path}"), FileInfo(True, True, info.size or 0, info.mtime_ns or 0))
                 for info in self.filesystem.get_file_info(selector)
                 if info.type == pafs.FileType.File and info.path.endswith(suffix)]
        return sorted(found, key=lambda item: str(item[0]))

    def list_names(self, suffix: str = "") -> list[tuple[str, FileInfo]]:
        """The files directly in this directory whose name ends with `suffix`: each name and its size and time,
        sorted by name; no path object per file, so that a listing of 50,000 parts stays cheap."""
        if self._local is None:
            return [(path.name, info) for path, info in self.list_infos(suffix, recursive=False)]
        found = [(name, FileInfo(True, True, size, mtime))
                 for _, name, size, mtime in local_files.matching(self._local, suffix, recursive=False)]
        return sorted(found, key=lambda item: item[0])

    @property
    def mtime_resolution_ns(self) -> int:
        """How far two readings of one unchanged file's modification time may differ: none for a local file (one
        inode), a second for an object (S3 keeps whole seconds, and a listing and a HEAD may round differently)."""
        return 1 if self._local is not None else 1_000_000_000

    def matches(self, pattern: str) -> bool:
        """Whether `glob(pattern)` would list this file (were it there)."""
        wanted = StoragePath.of(pattern)
        directories_only = [""] if pattern.endswith("/") else []  # as glob_picks spells it
        if (self._local is None) != (wanted._local is None):
            return False
        if self._local is not None:
            names = str(self._local.absolute()).split("/")
            return glob_picks(names, str(Path(pattern).absolute()).split("/") + directories_only)
        if self._identity()[:2] != wanted._identity()[:2]:
            return False
        return glob_picks(self.key.split("/"), wanted.key.split("/") + directories_only)

