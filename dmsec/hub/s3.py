"""An S3 bucket/prefix as a source, through boto3 (any S3-compatible store via `endpoint_url`).

URI: `s3://bucket[/prefix]`. The prefix is read like a local folder (same rules, `layout.py`):
the top level is listed with `Delimiter="/"`, then each top-level folder is listed recursively
with the `list_objects_v2` paginator and its checkpoints are found from small JSON files and
safetensors headers read by ranged GETs, so listing stays lazy folder by folder. `repo_id` is
"bucket/key-of-the-checkpoint"; `revision` a fingerprint of its keys, sizes and ETags.
The endpoint follows `dmsec.storage`'s one rule (`endpoint_url`, else `DMSEC_S3_ENDPOINT_URL`,
`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`); credentials follow boto3's usual chain. boto3's
"standard" retry mode handles throttling (503 SlowDown) and 5xx with backoff.
Where an object carries a full-object `ChecksumSHA256`, the download is verified against it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import posixpath
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from dmsec.errors import CheckpointError, ConfigError, UnsafeCheckpointError
from dmsec.hub.layout import (
    CIVITAI_INFO,
    DetectedCheckpoint,
    FileEntry,
    detect_checkpoints,
    has_root_marker,
)
from dmsec.hub.local import demote_bases, ref_from_detected
from dmsec.hub.ref import CheckpointFile, CheckpointRef
from dmsec.hub.source import HubSource, ListFilter, RefNotFoundError, register_source
from dmsec.hub.transfer import CHUNK_BYTES, stream_to_file
from dmsec.storage import s3_client, s3_endpoint

logger = logging.getLogger(__name__)


class _ObjectReader:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def read_range(self, path: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        key = self.prefix + path
        rng = f"bytes={start}-{start + length - 1}"
        body = self.client.get_object(Bucket=self.bucket, Key=key, Range=rng)["Body"]
        return bytes(body.read())


@register_source
class S3Source(HubSource):
    """Checkpoints under an S3 prefix (see the module docstring)."""

    name = "s3"
    schemes = ("s3",)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        max_attempts: int = 5,
        page_size: int = 1000,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"`bucket` must be a bucket name; got {bucket!r}")
        if not 1 <= page_size <= 1000:
            raise ConfigError(f"`page_size` must be in [1, 1000]; got {page_size}")
        self.bucket, self.page_size = bucket, page_size
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = s3_endpoint(endpoint_url)
        if client is None:
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": max_attempts})
            client = s3_client(self.endpoint_url, region_name=region, config=config)
        self.client = client

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> S3Source:
        """`s3://bucket[/prefix]`; options: endpoint_url, region, client, max_attempts, page_size."""
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or parts.query:
            raise ConfigError(f"`uri` must look like s3://bucket[/prefix]; got {uri!r}")
        return cls(parts.netloc, parts.path, **options)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # -- listing ---------------------------------------------------------------------------
    def _entries(self, prefix: str) -> list[FileEntry]:
        entries = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # a "folder" placeholder object
                rel = obj["Key"][len(self.prefix) :]
                etag = str(obj.get("ETag", "")).strip('"')
                entries.append(FileEntry(rel, int(obj["Size"]), obj.get("LastModified"), etag))
        return entries

    def _top_level(self) -> tuple[list[str], list[FileEntry]]:
        folders: list[str] = []
        files: list[FileEntry] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.prefix,
            Delimiter="/",
            PaginationConfig={"PageSize": self.page_size},
        )
        for page in pages:
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    rel = obj["Key"][len(self.prefix) :]
                    etag = str(obj.get("ETag", "")).strip('"')
                    files.append(FileEntry(rel, int(obj["Size"]), obj.get("LastModified"), etag))
        return folders, files

    def _exists(self, key: str) -> bool:
        if not key:
            return True
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(
            o["Key"] == key or o["Key"].startswith(key + "/") for o in response.get("Contents", [])
        )

    def iter_refs(self, flt: ListFilter) -> Iterator[CheckpointRef]:
        yield from demote_bases(self._refs())  # a base folder is listed as one (`local.py`)

    def _refs(self) -> Iterator[CheckpointRef]:
        reader = _ObjectReader(self.client, self.bucket, self.prefix)
        folders, files = self._top_level()
        names = [f.path for f in files]
        if self._exists(self.prefix + "unet/config.json"):
            names.append("unet/config.json")
        subtrees = self._subtrees(folders, files, has_root_marker(names))
        for entries in subtrees:
            for detected in detect_checkpoints(entries, reader):
                ref = self._to_ref(detected)
                if ref is not None:
                    yield ref

    def _subtrees(
        self, folders: list[str], files: list[FileEntry], root_is_checkpoint: bool
    ) -> Iterator[list[FileEntry]]:
        """The whole prefix when it is one checkpoint, else one listing per top-level entry."""
        if root_is_checkpoint:
            yield self._entries(self.prefix)
            return
        infos = {f.path: f for f in files if f.path.endswith(CIVITAI_INFO)}
        for f in files:
            if f.path not in infos:  # a Civitai download's version JSON travels with its file
                info = infos.get(str(PurePosixPath(f.path).with_suffix(CIVITAI_INFO)))
                yield [f] + ([info] if info else [])
        for folder in folders:
            yield self._entries(folder)

    def _key_of(self, root: str) -> str:
        return (self.prefix + root).rstrip("/")

    def _to_ref(self, detected: DetectedCheckpoint) -> CheckpointRef | None:
        key = self._key_of(detected.root)
        repo_id = f"{self.bucket}/{key}" if key else self.bucket
        return ref_from_detected(
            self.name, repo_id, detected, self._resolve_base(detected), f"s3://{repo_id}"
        )

    def _resolve_base(self, detected: DetectedCheckpoint) -> str | None:
        base = detected.base_model
        if base is None or "://" in base or base.startswith("/"):
            return base
        folder = self._key_of(detected.root)
        if detected.single_file:
            folder = posixpath.dirname(folder)
        for anchor in (folder, self.prefix.rstrip("/")):
            key = posixpath.normpath(posixpath.join(anchor, base)) if anchor else base
            if key.startswith("..") or key == ".":
                continue
            if self._exists(key):
                return f"{self.bucket}/{key}"
        return base

    # -- one ref, and its files ------------------------------------------------------------
    def _checkpoint_key(self, repo_id: str) -> str:
        if repo_id != self.bucket and not repo_id.startswith(self.bucket + "/"):
            raise RefNotFoundError(f"s3: {repo_id!r} is not in bucket {self.bucket!r}")
        key = repo_id[len(self.bucket) + 1 :]
        if key and not (key + "/").startswith(self.prefix) and self.prefix:
            raise RefNotFoundError(f"s3: {repo_id!r} is outside s3://{self.bucket}/{self.prefix}")
        return key

    def get(self, repo_id: str, revision: str | None = None) -> CheckpointRef:
        key = self._checkpoint_key(repo_id)
        reader = _ObjectReader(self.client, self.bucket, self.prefix)
        entries = self._entries(key + "/" if key else self.prefix)
        if not entries:
            entries = [e for e in self._entries(key) if e.path == key[len(self.prefix) :]]
        wanted = key[len(self.prefix) :]
        for detected in detect_checkpoints(entries, reader):
            if detected.root == wanted:
                ref = self._to_ref(detected)
                if ref is not None and revision not in (None, ref.revision):
                    raise RefNotFoundError(f"s3: {repo_id!r} is now at revision {ref.revision}")
                if ref is not None:
                    return ref
        raise RefNotFoundError(f"s3: {repo_id!r} is not a checkpoint")

    def fetch(
        self, ref: CheckpointRef, files: Sequence[CheckpointFile], dest: Path, max_file_bytes: int
    ) -> None:
        key = self._checkpoint_key(ref.repo_id)
        # A single-file checkpoint's key is the object itself, named like its one file.
        single = len(ref.files) == 1 and posixpath.basename(key) == ref.files[0].path
        for f in files:
            obj_key = key if single else f"{key}/{f.path}" if key else f.path
            obj = self.client.get_object(Bucket=self.bucket, Key=obj_key, ChecksumMode="ENABLED")
            if int(obj.get("ContentLength", 0)) > max_file_bytes:
                obj["Body"].close()
                raise UnsafeCheckpointError(
                    f.path,
                    f"object is {obj['ContentLength']:,} bytes, over the per-file cap of "
                    f"{max_file_bytes:,}",
                )
            target = dest / f.path
            stream_to_file(obj["Body"].iter_chunks(CHUNK_BYTES), target, max_file_bytes, f.path)
            self._verify_checksum(f.path, target, obj.get("ChecksumSHA256"))

    @staticmethod
    def _verify_checksum(name: str, path: Path, checksum: str | None) -> None:
        if not checksum or "-" in checksum:  # absent, or a composite multipart checksum
            return
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
                digest.update(chunk)
        if base64.b64encode(digest.digest()).decode() != checksum:
            raise CheckpointError(name, "S3 ChecksumSHA256 does not match the downloaded bytes")
