"""Globs over local paths and object keys with one set of rules (storage.globbing), one listing per store glob."""

from __future__ import annotations

import glob as local_glob
from pathlib import Path

import pyarrow.fs as pafs

from batchrank.errors import StorageError
from batchrank.storage.globbing import fixed_prefix, has_wildcards, segments_match
from batchrank.storage.path import StoragePath


def glob(pattern: str) -> list[StoragePath]:
    """Files matching a glob, sorted, with the glob module's rules: one listing under the pattern's fixed prefix for
    a store."""
    if not StoragePath.is_uri(pattern):
        return sorted(StoragePath.of(p) for p in local_glob.glob(pattern, recursive=True) if Path(p).is_file())
    uri = StoragePath.of(pattern)
    if has_wildcards(uri.bucket):
        raise StorageError(f"{pattern}: a wildcard in the bucket name is not supported")
    segments = uri.key.split("/")
    base = glob_base(pattern)
    wanted = segments[len(base.key.split("/")) if base.key else 0:]
    selector = pafs.FileSelector(base.filesystem_path, allow_not_found=True, recursive=len(wanted) > 1 or "**" in wanted)
    matches = []
    for info in uri.filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(base.filesystem_path):].strip("/").split("/")
        if segments_match(relative, wanted):
            matches.append(StoragePath.of(f"{uri.scheme}://{info.path}"))
    return sorted(matches)


def glob_base(pattern: str) -> StoragePath:
    """The directory (or prefix) of a glob before its first segment with a wildcard."""
    if not StoragePath.is_uri(pattern):
        return StoragePath.of("/".join(fixed_prefix(pattern.split("/"))) or ".")
    uri = StoragePath.of(pattern)
    return StoragePath.of(f"{uri.scheme}://{uri.bucket}/{'/'.join(fixed_prefix(uri.key.split('/')))}")
