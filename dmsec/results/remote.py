"""Results on S3 (`results.out: s3://bucket/prefix`): a local mirror, published commit by commit.

The scan writes into a local `ResultsStore` (the mirror, under the dmsec cache) exactly as it
does for a local folder, and publishes every commit to the bucket in the commit protocol's order:

- `begin()` (under the bucket's lock) deletes orphan parts in the bucket (a part whose
  checkpoints file is missing: a scan died mid-publish), then empties the mirror and downloads
  what a scan reads: the ledger, the committed `checkpoints` files and the scan records
  (`candidates` and `matches` stay in the bucket);
- `publish(paths)` uploads files in the order given: a part's candidates, matches, then its
  checkpoints file (the commit record), then the ledger; scan records and the report at the end.

So the bucket obeys the same protocol as a local folder: readers that take only committed parts
(`committed_files`, `dmsec query s3://...`) never see a half-published part, and a crash at any
point loses nothing and duplicates nothing (the next scan re-marks the ledger from committed
checkpoints rows and re-scans what the ledger lacks). Each object is one PUT, which S3 makes
visible atomically.

One writer (a scan, or `dmsec triage`) works on a results location at a time: `lock()` creates
`<prefix>/.lock` with a conditional PUT (`If-None-Match: *`), which S3 (and S3-compatible stores
that support conditional writes) refuses when the object exists, and renews it every
`heartbeat_s` (60 s) while the writer runs, however long that is. A lock not renewed for
`stale_after_s` (10 min) was left by a dead writer and is taken over; a writer that finds its lock
taken over stops publishing (`dmsec.results.s3_lock`).

Credentials and the endpoint follow `dmsec.storage`'s one rule, as for the registry and hub
sources (`DMSEC_S3_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3` for S3-compatible stores).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from dmsec.results.s3_lock import HEARTBEAT_S, STALE_AFTER_S, S3Lock
from dmsec.results.schema import PARTITION, TABLES
from dmsec.results.store import _PART, ResultsError, ResultsStore
from dmsec.storage import is_s3, s3_client, s3_endpoint, s3_filesystem

LOCK_NAME = ".lock"


def default_mirror_dir(uri: str) -> Path:
    """`$DMSEC_CACHE/results-mirror/<bucket>-<hash of the uri>` (default cache: ~/.cache/dmsec)."""
    cache = Path(os.environ.get("DMSEC_CACHE", Path.home() / ".cache" / "dmsec"))
    bucket = urlparse(uri).netloc
    return cache / "results-mirror" / f"{bucket}-{hashlib.sha256(uri.encode()).hexdigest()[:10]}"


class S3Results:
    """The results location `uri` (`s3://bucket/prefix`) and its local mirror."""

    def __init__(
        self,
        uri: str,
        mirror: str | Path | None = None,
        *,
        endpoint_url: str | None = None,
        stale_after_s: float = STALE_AFTER_S,
        heartbeat_s: float | None = HEARTBEAT_S,
    ) -> None:
        parsed = urlparse(uri)
        if not is_s3(uri) or not parsed.netloc:
            raise ResultsError(f"`results.out` {uri!r} must be s3://bucket/prefix")
        self.uri = uri.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.endpoint_url = s3_endpoint(endpoint_url)
        self.fs = s3_filesystem(self.endpoint_url)
        self.store = ResultsStore(mirror or default_mirror_dir(self.uri))
        self.stale_after_s, self.heartbeat_s = stale_after_s, heartbeat_s
        self._held: S3Lock | None = None

    # -- addresses -----------------------------------------------------------------------------
    def key(self, relative: str) -> str:
        """The object key of mirror-relative path `relative`."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _path(self, relative: str) -> str:
        return f"{self.bucket}/{self.key(relative)}"

    def _relative(self, path: str | Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.store.root.resolve()).as_posix()
        except ValueError:
            raise ResultsError(f"{path} is not inside the mirror {self.store.root}") from None

    def _list(self, folder: str) -> list[str]:
        """Mirror-relative paths of every object under `folder` (none if it does not exist)."""
        selector = pafs.FileSelector(self._path(folder), recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as exc:
            raise ResultsError(f"cannot list {self.uri}/{folder}: {exc}") from None
        root = f"{self._path('')}".rstrip("/") + "/"
        return sorted(i.path[len(root) :] for i in infos if i.type == pafs.FileType.File)

    # -- the writer lock -----------------------------------------------------------------------
    def _client(self):  # boto3: pyarrow has no conditional PUT
        return s3_client(self.endpoint_url)

    @contextlib.contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[S3Lock]:
        """Hold `<prefix>/.lock`, renewed by a heartbeat (`dmsec.results.s3_lock`); fail if another
        live writer holds it (after waiting up to `wait_s` seconds for it to end)."""
        held = S3Lock(self._client(), self.bucket, self.key(LOCK_NAME), self.uri,
                      stale_after_s=self.stale_after_s, heartbeat_s=self.heartbeat_s, wait_s=wait_s)  # fmt: skip
        with held:
            self._held = held
            try:
                yield held
            finally:
                self._held = None

    # -- syncing -------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Delete orphan parts in the bucket; returns their mirror-relative paths. Under `lock()`."""
        committed = {Path(p).name for p in self._list("checkpoints")}
        removed = []
        for table in TABLES:
            for rel in self._list(table):
                name = Path(rel).name
                if name.endswith(".parquet") and _PART.match(name) and name not in committed:
                    self.fs.delete_file(self._path(rel))
                    removed.append(rel)
        return removed

    def begin(self) -> list[str]:
        """Recover the bucket, then refill the mirror from it; returns the orphans removed."""
        removed = self.recover()
        shutil.rmtree(self.store.root, ignore_errors=True)
        self.store.root.mkdir(parents=True)
        wanted = [r for r in self._list("checkpoints") if r.startswith(f"checkpoints/{PARTITION}=")]
        wanted += [r for r in self._list("scans") if r.endswith("/run.json")]
        if self.fs.get_file_info(self._path("ledger.parquet")).type == pafs.FileType.File:
            wanted.append("ledger.parquet")
        for rel in wanted:
            self.download(rel)
        return removed

    def download(self, relative: str, root: Path | None = None) -> Path:
        """Copy one object into the mirror (or under `root`); returns its local path."""
        dest = (root or self.store.root) / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            pafs.copy_files(self._path(relative), str(dest.resolve()), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())  # fmt: skip
        except OSError as exc:
            raise ResultsError(f"cannot download {self.uri}/{relative}: {exc}") from None
        return dest

    def publish(self, paths: Iterable[str | Path]) -> None:
        """Upload mirror files to the bucket, one PUT each, in the order given."""
        for path in paths:
            if self._held is not None:
                self._held.check()  # a writer that lost its lock stops here
            rel = self._relative(path)
            try:
                with self.fs.open_output_stream(self._path(rel)) as out:
                    out.write(Path(path).read_bytes())
            except OSError as exc:
                raise ResultsError(f"cannot upload {rel} to {self.uri}: {exc}") from None

    def snapshot(self, dest: str | Path | None = None) -> Path:
        """A read-only local copy of every committed part, scan record and triage decision (for
        queries, reports, findings)."""
        folder = Path(dest) if dest else self.store.root.with_name(self.store.root.name + "-read")
        shutil.rmtree(folder, ignore_errors=True)
        committed = {Path(p).name for p in self._list("checkpoints")}
        wanted = [r for t in TABLES for r in self._list(t) if Path(r).name in committed]
        for rel in wanted + self._list("scans") + self._list("reports") + self._list("triage"):
            self.download(rel, folder)
        return folder
