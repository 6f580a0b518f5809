"""Globs and data-file listings over local paths and object keys with one set of rules (storage.globbing): hidden
names left out, a matched directory standing for its data files; one listing per store glob."""

from __future__ import annotations

import glob as local_glob
import os

import pyarrow.fs as pafs

from batchrank.errors import StorageError
from batchrank.storage.globbing import (
    DATA_SUFFIX,
    fixed_prefix,
    glob_picks,
    has_wildcards,
    is_data_file,
    segments_match,
)
from batchrank.storage.path import StoragePath


def glob(pattern: str) -> list[StoragePath]:
    """Files a glob picks, sorted: those it matches with the glob module's rules, less hidden names, and the data
    files of each directory it matches. One listing under the pattern's fixed prefix for a store."""
    if not StoragePath.is_uri(pattern):
        return _local_glob(pattern)
    uri = StoragePath.of(pattern)
    if has_wildcards(uri.bucket):
        raise StorageError(f"{pattern}: a wildcard in the bucket name is not supported")
    segments = uri.key.split("/") + ([""] if pattern.endswith("/") else [])  # `/` at the end: directories only
    base = glob_base(pattern)
    wanted = segments[len(base.key.split("/")) if base.key else 0:]
    if len(wanted) == 1 and wanted != ["**"]:  # the prefix's own entries, then only the directories matched
        return _one_level(uri, base, wanted)
    selector = pafs.FileSelector(base.filesystem_path, allow_not_found=True, recursive=True)
    matches = []
    for info in uri.filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File and glob_picks(_below(info.path, base.filesystem_path), wanted):
            matches.append(StoragePath.of(f"{uri.scheme}://{info.path}"))
    return sorted(matches)


def _one_level(uri: StoragePath, base: StoragePath, wanted: list[str]) -> list[StoragePath]:
    selector = pafs.FileSelector(base.filesystem_path, allow_not_found=True, recursive=False)
    matches: list[StoragePath] = []
    for info in uri.filesystem.get_file_info(selector):
        if not segments_match(_below(info.path, base.filesystem_path), wanted):
            continue
        found = StoragePath.of(f"{uri.scheme}://{info.path}")
        if info.type == pafs.FileType.File:
            matches.append(found)
        elif info.type == pafs.FileType.Directory:
            matches += data_files(found)
    return sorted(matches)


def _local_glob(pattern: str) -> list[StoragePath]:
    segments = pattern.split("/")
    fixed = fixed_prefix(segments)
    base, wanted = "/".join(fixed) or ".", segments[len(fixed):]
    if len(wanted) > 1 and wanted[-1] == "":
        wanted = wanted[:-1]  # `/` at the end: the glob module returns directories only
    picked: set[StoragePath] = set()
    for match in local_glob.glob(pattern, recursive=True):
        relative = os.path.relpath(match, base)
        if not segments_match([] if relative == "." else relative.split(os.sep), wanted):
            continue  # a hidden name the glob module lets through ('_SUCCESS')
        if os.path.isfile(match):
            picked.add(StoragePath.of(match))
        elif os.path.isdir(match):
            picked.update(data_files(StoragePath.of(match)))
    return sorted(picked)


def data_files(directory: StoragePath) -> list[StoragePath]:
    """A directory's (or prefix's) data files: every DATA_SUFFIX file under it with no hidden name on the way, sorted;
    one listing request for a store."""
    root = str(directory)
    return [path for path, _ in directory.list_files(DATA_SUFFIX) if is_data_file(_below(str(path), root))]


def _below(path: str, root: str) -> list[str]:
    """The segments of `path` under `root` (a string prefix of it)."""
    return path[len(root):].strip("/").split("/")


def glob_base(pattern: str) -> StoragePath:
    """The directory (or prefix) of a glob before its first segment with a wildcard."""
    if not StoragePath.is_uri(pattern):
        return StoragePath.of("/".join(fixed_prefix(pattern.split("/"))) or ".")
    uri = StoragePath.of(pattern)
    return StoragePath.of(f"{uri.scheme}://{uri.bucket}/{'/'.join(fixed_prefix(uri.key.split('/')))}")
