"""Where dmsec keeps files: a local folder or an ``s3://bucket/prefix``; one S3 endpoint rule.

Every S3 client dmsec makes (the registry's and the results' pyarrow filesystems, the hub source's
and the results lock's boto3 clients) reaches the same server: `endpoint_url` when one is passed,
else the first set of ``DMSEC_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``
(an S3-compatible server: MinIO, moto, Ceph), else AWS itself. Credentials and region come from
the usual AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``/``AWS_DEFAULT_REGION``).

`FileStore` reads and writes named files under one location (the protected-artwork registry's):
local writes go to a temporary file renamed into place; S3 writes are single objects, which S3
makes visible atomically. A location has one writer at a time.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from dmsec.errors import DmsecError, StorageError

ENDPOINT_ENV_VARS = ("DMSEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def is_s3(location: str | Path) -> bool:
    """Whether `location` is an ``s3://`` URI."""
    return str(location).startswith("s3://")


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint to use: `endpoint_url`, else the environment's (see the module docstring),
    else None (AWS). Raises `StorageError` unless it looks like http(s)://host[:port]."""
    endpoint = endpoint_url or next(
        (os.environ[v] for v in ENDPOINT_ENV_VARS if os.environ.get(v)), None
    )
    if endpoint is None:
        return None
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise StorageError(f"`endpoint_url` must look like http(s)://host:port; got {endpoint!r}")
    return endpoint


def s3_filesystem(endpoint_url: str | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem on the endpoint `s3_endpoint(endpoint_url)` names."""
    endpoint = s3_endpoint(endpoint_url)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if endpoint is None:
        return pafs.S3FileSystem(region=region)
    parsed = urlparse(endpoint)
    return pafs.S3FileSystem(region=region, endpoint_override=parsed.netloc, scheme=parsed.scheme)


def s3_client(endpoint_url: str | None = None, **options: Any) -> Any:
    """A boto3 S3 client on the endpoint `s3_endpoint(endpoint_url)` names (`options`: boto3's,
    e.g. `region_name`, `config`)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint(endpoint_url), **options)


class FileStore:
    """Reads and writes named files under one location (local or S3); failures raise `error`."""

    def __init__(
        self,
        location: str | Path,
        *,
        endpoint_url: str | None = None,
        error: type[DmsecError] = StorageError,
    ) -> None:
        self.location = str(location)
        self.error = error
        self.fs: pafs.FileSystem
        self.bucket: str | None
        if is_s3(location):
            parsed = urlparse(self.location)
            if not parsed.netloc:
                raise self.error(
                    f"`location` {self.location} must name a bucket: s3://bucket/prefix"
                )
            self.fs = s3_filesystem(endpoint_url)
            self.root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
            self.bucket = parsed.netloc
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = str(Path(location).expanduser().resolve())
            self.bucket = None

    def path(self, name: str) -> str:
        """The filesystem path of file `name` in this registry."""
        return f"{self.root}/{name}"

    def uri(self, name: str) -> str:
        """A user-facing address of file `name` (``s3://...`` or a local path)."""
        return f"s3://{self.path(name)}" if self.bucket else self.path(name)

    def exists(self, name: str) -> bool:
        """Whether file `name` exists."""
        return self._info(name).type == pafs.FileType.File

    def size(self, name: str) -> int | None:
        """Bytes in file `name`, or None when it does not exist."""
        info = self._info(name)
        return int(info.size) if info.type == pafs.FileType.File and info.size is not None else None

    def read_bytes(self, name: str) -> bytes | None:
        """The contents of file `name`, or None when it does not exist."""
        if not self.exists(name):
            return None
        try:
            with self.fs.open_input_stream(self.path(name)) as fh:
                return bytes(fh.read())
        except (OSError, pa.ArrowException) as exc:
            raise self.error(f"cannot read {self.uri(name)}: {exc}") from None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace file `name` with `data` (atomically for local folders)."""
        try:
            if self.bucket is None:
                self.fs.create_dir(self.root, recursive=True)
                tmp = self.path(f".{name}.{uuid.uuid4().hex}.tmp")
                with self.fs.open_output_stream(tmp) as fh:
                    fh.write(data)
                self.fs.move(tmp, self.path(name))
            else:
                self._check_bucket()
                with self.fs.open_output_stream(self.path(name)) as fh:
                    fh.write(data)
        except (OSError, pa.ArrowException) as exc:
            raise self.error(f"cannot write {self.uri(name)}: {exc}") from None

    def delete(self, name: str) -> None:
        """Remove file `name` if it exists."""
        if self.exists(name):
            self.fs.delete_file(self.path(name))

    def _info(self, name: str) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path(name))
        except (OSError, pa.ArrowException) as exc:
            raise self.error(f"cannot reach {self.uri(name)}: {exc}") from None

    def _check_bucket(self) -> None:
        assert self.bucket is not None
        if self.fs.get_file_info(self.bucket).type == pafs.FileType.NotFound:
            raise self.error(f"S3 bucket {self.bucket!r} does not exist; create it first")
