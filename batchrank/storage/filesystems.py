"""pyarrow filesystems for object-store URIs, built from the standard environment, and what their errors mean.

S3 settings: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), AWS_REGION or AWS_DEFAULT_REGION, and
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for S3-compatible stores such as MinIO; without keys the AWS default chain
applies (profiles, instance roles). GCS uses Google's default credentials.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from batchrank.errors import StorageError

SCHEMES = ("s3", "gs", "gcs")
_S3_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                   "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
_FILESYSTEMS: dict[tuple[str, ...], pafs.FileSystem] = {}
_LOCK = threading.Lock()
LOCAL = pafs.LocalFileSystem()


def canonical_scheme(scheme: str) -> str:
    return "gs" if scheme == "gcs" else scheme


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def object_filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    """The filesystem for a bucket, from the environment (one per setting, reused across calls and threads)."""
    if scheme != "s3":
        key: tuple[str, ...] = (canonical_scheme(scheme),)
        with _LOCK:
            if key not in _FILESYSTEMS:
                _FILESYSTEMS[key] = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")[0]
            return _FILESYSTEMS[key]
    environment = tuple(os.environ.get(name, "") for name in _S3_ENVIRONMENT)
    region, endpoint = _region(), _endpoint()
    # Without a region or an endpoint, ask AWS where the bucket lives (what FileSystem.from_uri does).
    key = ("s3", *environment, "" if region or endpoint else bucket)
    with _LOCK:
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = _s3_filesystem(bucket, region, endpoint)
        return _FILESYSTEMS[key]


def _s3_filesystem(bucket: str, region: str | None, endpoint: str | None) -> pafs.S3FileSystem:
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
            options["region"] = pafs.resolve_s3_region(bucket)
        except OSError as error:
            raise StorageError(describe_error(f"s3://{bucket}", error)) from None
    return pafs.S3FileSystem(**options)


def polars_storage_options(scheme: str) -> dict[str, str]:
    """The same settings for polars' own object-store reader (scan_parquet of s3:// URIs)."""
    if scheme != "s3":
        return {}
    names = {"AWS_ACCESS_KEY_ID": "aws_access_key_id", "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
             "AWS_SESSION_TOKEN": "aws_session_token"}
    options = {option: os.environ[name] for name, option in names.items() if os.environ.get(name)}
    if _region():
        options["aws_region"] = _region()  # type: ignore[assignment]
    endpoint = _endpoint()
    if endpoint:
        options["aws_endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            options["aws_allow_http"] = "true"
    return options


_DENIED = ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "credentials",
           "UNRECOGNIZED_CLIENT", "ExpiredToken", "Forbidden", "403")
_UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Could not resolve host", "timed out")
_NO_BUCKET = ("NO_SUCH_BUCKET", "bucket does not exist", "NoSuchBucket")


def describe_error(uri: str, error: BaseException) -> str:
    """One sentence naming the URI and the likely cause of a store's error."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    bucket = uri.partition("://")[2].partition("/")[0] or "?"
    if any(marker in detail for marker in _NO_BUCKET):
        return f"{uri}: the bucket {bucket!r} does not exist ({detail})"
    if any(marker in detail for marker in _DENIED):
        return (f"{uri}: access denied or no valid credentials ({detail}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile or instance role) for S3, or Google credentials for GCS")
    if any(marker in detail for marker in _UNREACHABLE):
        return f"{uri}: cannot reach the object store ({detail}); check AWS_ENDPOINT_URL and the network"
    return f"{uri}: {detail}"
