"""Where bytes live: local paths, or object-store URIs (s3://bucket/key, gs://bucket/key) through pyarrow.fs.

A local path stays a pathlib.Path and is read and written exactly as before. A URI becomes an ObjectPath, which has
the few pathlib methods batchrank uses (`/`, name, parent, exists, read_text, unlink, glob, ...), so the code that
lays out an output directory is the same for both.

Atomicity: a local file is written to a temporary name, fsynced and renamed into place; an object is written in
one upload, and an object store makes it visible whole at the end of the upload or not at all, so a reader never
sees half an object and there are no temporaries to clean up.

S3 settings come from the standard environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN),
AWS_REGION or AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for S3-compatible stores such as
MinIO; without keys the AWS default chain applies (profiles, instance roles). GCS uses Google's default credentials.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from batchrank.errors import StorageError

SCHEMES = ("s3", "gs", "gcs")
_WILDCARDS = "*?["


def is_remote(location: str | os.PathLike[str] | ObjectPath) -> bool:
    """True for an object-store URI (s3://, gs://, gcs://)."""
    if isinstance(location, ObjectPath):
        return True
    if isinstance(location, os.PathLike):
        return False
    scheme, separator, _ = location.partition("://")
    return bool(separator) and scheme.lower() in SCHEMES


class ObjectPath:
    """An object or prefix in an object store, with the subset of pathlib.Path's API that batchrank uses.

    There are no directories in an object store: mkdir does nothing, and a prefix "exists" while it holds objects.
    """

    def __init__(self, uri: str):
        scheme, _, rest = uri.partition("://")
        bucket, _, key = rest.partition("/")
        if scheme.lower() not in SCHEMES or not bucket:
            raise ValueError(f"{uri!r} is not an object-store URI (s3://bucket/key or gs://bucket/key)")
        self.scheme, self.bucket = scheme.lower(), bucket
        self.key = "/".join(part for part in key.split("/") if part and part != ".")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: ObjectPath) -> bool:
        return str(self) < str(other)

    def __truediv__(self, name: str) -> ObjectPath:
        if ".." in str(name).split("/"):
            raise ValueError(f"{name!r}: '..' has no meaning in an object key")
        return ObjectPath(f"{self}/{name}")

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(f"{self.scheme}://{self.bucket}/{PurePosixPath(self.key).parent}".removesuffix("/."))

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def is_relative_to(self, other: ObjectPath) -> bool:
        """Whether this is `other` or lies under it (key boundaries, not string prefixes)."""
        if (_alias(self.scheme), self.bucket) != (_alias(other.scheme), other.bucket):
            return False
        return not other.key or self.key == other.key or self.key.startswith(other.key + "/")

    def resolve(self) -> ObjectPath:
        return self

    # --- I/O, through the bucket's pyarrow filesystem -------------------------------------------------------------

    @property
    def filesystem_path(self) -> str:
        """bucket/key, as pyarrow's filesystems name it."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def _info(self) -> pafs.FileInfo:
        return filesystem(self).get_file_info(self.filesystem_path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def read_bytes(self) -> bytes:
        with filesystem(self).open_input_stream(self.filesystem_path) as stream:
            return stream.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        write_bytes_atomically(self, data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            filesystem(self).delete_file(self.filesystem_path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: an object's key is its whole path."""

    def glob(self, pattern: str) -> list[ObjectPath]:
        return glob(f"{self}/{pattern}")


Location = Path | ObjectPath


def as_location(path: str | os.PathLike[str] | ObjectPath) -> Location:
    """An ObjectPath for a URI, a pathlib.Path for anything else (exactly what Path(path) gave before)."""
    if isinstance(path, ObjectPath):
        return path
    if is_remote(path):
        return ObjectPath(str(path))
    return Path(path)


def _alias(scheme: str) -> str:
    return "gs" if scheme == "gcs" else scheme


# --- filesystems ---------------------------------------------------------------------------------------------------

_FILESYSTEMS: dict[tuple[str, ...], pafs.FileSystem] = {}
_FILESYSTEMS_LOCK = threading.Lock()
_S3_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                   "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def filesystem(location: ObjectPath) -> pafs.FileSystem:
    """The pyarrow filesystem for a URI's bucket, built from the environment (one per setting, reused)."""
    if location.scheme != "s3":
        key: tuple[str, ...] = (_alias(location.scheme),)
        with _FILESYSTEMS_LOCK:
            if key not in _FILESYSTEMS:
                _FILESYSTEMS[key] = pafs.FileSystem.from_uri(f"{location.scheme}://{location.bucket}")[0]
            return _FILESYSTEMS[key]
    environment = tuple(os.environ.get(name, "") for name in _S3_ENVIRONMENT)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # Without a region or an endpoint, ask AWS where the bucket lives (what FileSystem.from_uri does).
    key = ("s3", *environment, "" if region or endpoint else location.bucket)
    with _FILESYSTEMS_LOCK:
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = _s3_filesystem(location, region, endpoint)
        return _FILESYSTEMS[key]


def _s3_filesystem(location: ObjectPath, region: str | None, endpoint: str | None) -> pafs.S3FileSystem:
    # Delayed open: an object smaller than one upload part is sent in a single PutObject at close.
    options: dict[str, object] = {"allow_delayed_open": True}
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        options["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = os.environ["AWS_SECRET_ACCESS_KEY"]
        if os.environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        options["scheme"] = parts.scheme  # http for a local MinIO or test server
    if region:
        options["region"] = region
    elif not endpoint:
        try:
            options["region"] = pafs.resolve_s3_region(location.bucket)
        except OSError as error:
            raise StorageError(describe_error(location, error)) from None
    return pafs.S3FileSystem(**options)


# --- bytes ---------------------------------------------------------------------------------------------------------


@contextmanager
def atomic_local_file(path: Path) -> Iterator[BinaryIO]:
    """A handle on a temporary file beside `path`: when the block ends it is fsynced and renamed into place; if the
    block raises, it is removed and `path` is left as it was (a full disk leaves no half-written file behind)."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomically(location: Location, data: bytes | memoryview) -> None:
    """A reader sees the previous content or the new one, never part of it.

    Local: a temporary file, fsynced, renamed into place (removed on any error). Object store: one upload; the
    object appears whole when the upload completes, or not at all. (pyarrow cannot abort an upload: an interrupt
    that lands between opening the stream and the single write completes an empty object, which every reader of
    batchrank's files takes as damaged, e.g. a part that is scored again.)
    """
    if isinstance(location, ObjectPath):
        with filesystem(location).open_output_stream(location.filesystem_path) as stream:
            stream.write(data)
        return
    with atomic_local_file(location) as handle:
        handle.write(data)


def upload_file(source: Path, destination: ObjectPath) -> None:
    """Copy a local file to the object store in one streamed (multipart) upload: whole at the end or not at all.

    (An interrupt in the middle completes what was sent: pyarrow cannot abort an upload. Its one user, the staged
    copy of the input, is written before job.json, so a run stopped there plans and stages again.)"""
    with open(source, "rb") as reader, filesystem(destination).open_output_stream(destination.filesystem_path) as writer:
        shutil.copyfileobj(reader, writer, length=8 << 20)


def delete_tree(location: Location) -> None:
    """Remove a directory (local) or every object under a prefix; a missing one is fine."""
    if isinstance(location, ObjectPath):
        try:
            filesystem(location).delete_dir(location.filesystem_path)
        except FileNotFoundError:
            pass
        return
    shutil.rmtree(location, ignore_errors=True)


def file_signatures(locations: list[Location]) -> list[list[object]]:
    """[path, size, modification time in ns] of each file: what a checkpoint fingerprints its input by.

    Local paths as before (resolved path, st_size, st_mtime_ns); objects by URI, size and the store's
    last-modified time (a rewritten object gets a new one), from one metadata request per object.
    """
    signatures: list[list[object]] = []
    for location in locations:
        if isinstance(location, ObjectPath):
            info = location._info()
            signatures.append([str(location), info.size, info.mtime_ns])
        else:
            stat = location.stat()
            signatures.append([str(location.resolve()), stat.st_size, stat.st_mtime_ns])
    return signatures


# --- listing -------------------------------------------------------------------------------------------------------


def has_wildcards(path: str) -> bool:
    return any(ch in path for ch in _WILDCARDS)


def glob_base(pattern: ObjectPath | str) -> ObjectPath:
    """The prefix of a URI glob before its first segment with a wildcard."""
    uri = ObjectPath(str(pattern))
    fixed = []
    for segment in uri.key.split("/"):
        if has_wildcards(segment):
            break
        fixed.append(segment)
    return ObjectPath(f"{uri.scheme}://{uri.bucket}/{'/'.join(fixed)}")


def glob(pattern: str) -> list[ObjectPath]:
    """Objects matching a URI glob, sorted, with the glob module's rules: `*`, `?` and `[...]` stay inside one
    segment, `**` spans any number of segments, and names starting with '.' match only a pattern that does.

    One listing under the fixed prefix (recursive unless the pattern has a single segment there).
    """
    uri = ObjectPath(pattern)
    if has_wildcards(uri.bucket):
        raise StorageError(f"{pattern}: a wildcard in the bucket name is not supported")
    base = glob_base(uri)
    wanted = uri.key.split("/")[len(base.key.split("/")) if base.key else 0:]
    selector = pafs.FileSelector(base.filesystem_path, allow_not_found=True, recursive=len(wanted) > 1 or "**" in wanted)
    infos = filesystem(uri).get_file_info(selector)
    matches = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(base.filesystem_path):].strip("/").split("/")
        if _segments_match(relative, wanted):
            matches.append(ObjectPath(f"{uri.scheme}://{info.path}"))
    return sorted(matches)


def matches_glob(uri: str, pattern: str) -> bool:
    """Whether glob(pattern) would list the object `uri`."""
    path, wanted = ObjectPath(uri), ObjectPath(pattern)
    if (_alias(path.scheme), path.bucket) != (_alias(wanted.scheme), wanted.bucket):
        return False
    return _segments_match(path.key.split("/"), wanted.key.split("/"))


def _segments_match(names: list[str], patterns: list[str]) -> bool:
    if not patterns:
        return not names
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(_segments_match(names[i:], rest) for i in range(len(names) + 1)
                   if not any(name.startswith(".") for name in names[:i]))
    if not names:
        return False
    name = names[0]
    if name.startswith(".") and not head.startswith(".") and has_wildcards(head):
        return False
    return fnmatch.fnmatchcase(name, head) and _segments_match(names[1:], rest)


def list_files(prefix: ObjectPath, suffix: str = "") -> list[ObjectPath]:
    """Every object under a prefix whose name ends with `suffix`, sorted."""
    selector = pafs.FileSelector(prefix.filesystem_path, allow_not_found=True, recursive=True)
    infos = filesystem(prefix).get_file_info(selector)
    return sorted(ObjectPath(f"{prefix.scheme}://{info.path}") for info in infos
                  if info.type == pafs.FileType.File and info.path.endswith(suffix))


def bucket_exists(location: ObjectPath) -> bool:
    bucket = ObjectPath(f"{location.scheme}://{location.bucket}")
    return filesystem(bucket).get_file_info(bucket.filesystem_path).type != pafs.FileType.NotFound


def require_bucket(location: Location) -> None:
    """For a URI whose object was not found: say so when the bucket itself is missing (a typo, another account)."""
    if isinstance(location, ObjectPath) and not bucket_exists(location):
        raise StorageError(f"{location}: the bucket {location.bucket!r} does not exist")


# --- errors --------------------------------------------------------------------------------------------------------

_DENIED = ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "credentials",
           "UNRECOGNIZED_CLIENT", "ExpiredToken", "Forbidden", "403")
_UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Could not resolve host", "timed out")


def describe_error(location: ObjectPath | str, error: BaseException) -> str:
    """One sentence naming the URI and the likely cause of a store's error."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    bucket = ObjectPath(str(location)).bucket if is_remote(str(location)) else "?"
    if "NO_SUCH_BUCKET" in detail or "bucket does not exist" in detail or "NoSuchBucket" in detail:
        return f"{location}: the bucket {bucket!r} does not exist ({detail})"
    if any(marker in detail for marker in _DENIED):
        return (f"{location}: access denied or no valid credentials ({detail}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile or instance role) for S3, or Google credentials for GCS")
    if any(marker in detail for marker in _UNREACHABLE):
        return f"{location}: cannot reach the object store ({detail}); check AWS_ENDPOINT_URL and the network"
    return f"{location}: {detail}"


@contextmanager
def reaching(location: Location | str) -> Iterator[None]:
    """Turn an object store's OSError into a StorageError (exit 2) naming the URI. Local paths: unchanged."""
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        if not is_remote(location):
            raise
        raise StorageError(describe_error(str(location), error)) from None
