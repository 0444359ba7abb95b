"""Where a registry's files live: a local folder or an ``s3://bucket/prefix``, via pyarrow.fs.

S3 settings come from the usual AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``/``AWS_DEFAULT_REGION``); an S3-compatible server (MinIO, moto, Ceph) is reached by
passing `endpoint_url` or setting ``DMSEC_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``). Local writes go to a temporary file renamed into place; S3 writes are
single objects, which S3 makes visible atomically. A registry has one writer at a time.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from dmsec.match.errors import RegistryError

ENDPOINT_ENV_VARS = ("DMSEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def is_s3(location: str | Path) -> bool:
    """Whether `location` is an ``s3://`` URI."""
    return str(location).startswith("s3://")


class RegistryStore:
    """Reads and writes named files under one registry location (local or S3)."""

    def __init__(self, location: str | Path, *, endpoint_url: str | None = None) -> None:
        self.location = str(location)
        self.fs: pafs.FileSystem
        self.bucket: str | None
        if is_s3(location):
            parsed = urlparse(self.location)
            if not parsed.netloc:
                raise RegistryError(
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
            raise RegistryError(f"cannot read {self.uri(name)}: {exc}") from None

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
            raise RegistryError(f"cannot write {self.uri(name)}: {exc}") from None

    def delete(self, name: str) -> None:
        """Remove file `name` if it exists."""
        if self.exists(name):
            self.fs.delete_file(self.path(name))

    def _info(self, name: str) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path(name))
        except (OSError, pa.ArrowException) as exc:
            raise RegistryError(f"cannot reach {self.uri(name)}: {exc}") from None

    def _check_bucket(self) -> None:
        assert self.bucket is not None
        if self.fs.get_file_info(self.bucket).type == pafs.FileType.NotFound:
            raise RegistryError(f"S3 bucket {self.bucket!r} does not exist; create it first")


def s3_filesystem(endpoint_url: str | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem, pointed at `endpoint_url` (or the env vars above) if given."""
    endpoint = endpoint_url or next(
        (os.environ[v] for v in ENDPOINT_ENV_VARS if os.environ.get(v)), None
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if endpoint is None:
        return pafs.S3FileSystem(region=region)
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise RegistryError(f"`endpoint_url` must look like http(s)://host:port; got {endpoint!r}")
    return pafs.S3FileSystem(region=region, endpoint_override=parsed.netloc, scheme=parsed.scheme)
