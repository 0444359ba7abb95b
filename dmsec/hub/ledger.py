"""The ledger: which checkpoint revisions were scanned with which scan config, as Parquet.

One row per (source, repo_id, revision, scan_config_hash), the last status wins:

    source, repo_id, revision, scan_config_hash, scanned_at (UTC), status, weights_sha256

A rerun asks `pending(refs, config_hash)` and gets only refs the ledger has not seen at that
revision with that scan config, so a changed checkpoint (new revision) or a changed scan config is
scanned again, an unchanged one is not. `weights_sha256` (`weights_digest`: one hash over the
hashes the hub declares for the weights and config files, null where it declares none) lets a
new revision that changed only other files (a README edit) be recognised by `unchanged` and spared
a rescan. Ledgers written before that column read it as null. Statuses are free strings (the pull step's "ok",
"refused", "failed"; the scan's own); refs whose last status is in `retry_statuses` (default
"failed": a hub or network failure) are listed again.

Writes are atomic: the whole table is written to a temporary file and renamed over the old one,
under an exclusive lock file, so a crash never leaves a torn ledger and two writers on one machine
do not lose each other's rows. On an object store (`s3://...`, through pyarrow's file systems)
one PUT replaces the object atomically, but there is no lock: use one writer per ledger there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dmsec.errors import ConfigError
from dmsec.hub.ref import CheckpointRef
from dmsec.models.safe_load import PICKLE_SUFFIXES

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("repo_id", pa.string(), nullable=False),
        pa.field("revision", pa.string(), nullable=False),
        pa.field("scan_config_hash", pa.string(), nullable=False),
        pa.field("scanned_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=True),
    ]
)
#: suffixes of the files whose content a scan depends on (weights, and the configs beside them)
_CONTENT_SUFFIXES = (".safetensors", ".json", *PICKLE_SUFFIXES)
_Key = tuple[str, str, str, str]


def scan_config_hash(config: Any) -> str:
    """A stable 16-hex-digit hash of a scan config (a dataclass, mapping or JSON-able value)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_digest(ref: CheckpointRef) -> str | None:
    """A sha256 over the (path, declared hash) of `ref`'s weights and config files, or None
    when there are none or the hub declares no hash for one of them (the local source, S3)."""
    parts = []
    for f in sorted(ref.files, key=lambda f: f.path):
        if f.suffix not in _CONTENT_SUFFIXES:
            continue
        digest = f.sha256 or f.git_sha1
        if digest is None:
            return None
        parts.append(f"{f.path}\x00{digest}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest() if parts else None


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row."""

    source: str
    repo_id: str
    revision: str
    scan_config_hash: str
    scanned_at: datetime
    status: str
    weights_sha256: str | None = None

    @property
    def key(self) -> _Key:
        return (self.source, self.repo_id, self.revision, self.scan_config_hash)


class Ledger:
    """A Parquet ledger at a local path or a pyarrow file-system URI (e.g. `s3://b/ledger.parquet`)."""

    def __init__(self, path: str | Path, filesystem: pafs.FileSystem | None = None) -> None:
        text = str(path)
        if not text:
            raise ConfigError("`path` of the ledger must be non-empty")
        if filesystem is None and "://" in text and not text.startswith("file://"):
            filesystem, text = pafs.FileSystem.from_uri(text)
        elif text.startswith("file://"):
            text = text[len("file://") :]
        self.filesystem = filesystem
        self.path = text if filesystem is not None else str(Path(text).expanduser())

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> dict[_Key, LedgerEntry]:
        if self.filesystem is None:
            if not Path(self.path).exists():
                return {}
            table = pq.read_table(self.path, schema=LEDGER_SCHEMA)
        else:
            info = self.filesystem.get_file_info(self.path)
            if info.type == pafs.FileType.NotFound:
                return {}
            table = pq.read_table(self.path, filesystem=self.filesystem, schema=LEDGER_SCHEMA)
        rows = (LedgerEntry(**row) for row in table.to_pylist())
        return {row.key: row for row in rows}

    def entries(self) -> list[LedgerEntry]:
        """Every row, oldest scan first."""
        return sorted(self._read().values(), key=lambda e: (e.scanned_at, e.key))

    def status_of(self, ref: CheckpointRef, config_hash: str) -> str | None:
        """The last status of `ref` at its revision under `config_hash`, or None if never scanned."""
        entry = self._read().get((*ref.key, config_hash))
        return entry.status if entry else None

    def pending(
        self,
        refs: Iterable[CheckpointRef],
        config_hash: str,
        *,
        retry_statuses: Collection[str] = ("failed",),
    ) -> Iterator[CheckpointRef]:
        """Lazily yield the refs not yet scanned at their revision with `config_hash`.

        The ledger is read once, when iteration starts; refs whose last status is in
        `retry_statuses` are yielded again.
        """
        seen = self._read()
        for ref in refs:
            entry = seen.get((*ref.key, config_hash))
            if entry is None or entry.status in retry_statuses:
                yield ref

    def scanned(
        self, config_hash: str, *, retry_statuses: Collection[str] = ("failed",)
    ) -> set[tuple[str, str, str]]:
        """The (source, repo_id, revision) keys scanned with `config_hash` and not to be retried:
        what `pending` drops, read once, to check listed refs against before any hub call."""
        return {
            e.key[:3]
            for e in self._read().values()
            if e.scan_config_hash == config_hash and e.status not in retry_statuses
        }

    def unchanged(
        self,
        ref: CheckpointRef,
        config_hash: str,
        *,
        retry_statuses: Collection[str] = ("failed",),
    ) -> LedgerEntry | None:
        """The entry of another revision of `ref` scanned with `config_hash` whose weights and
        configs hash the same (`weights_digest`), so scanning `ref` would find the same; None
        when there is none or the hub declares no hashes. Entries to be retried do not count."""
        return unchanged_entry(self._read().values(), ref, config_hash, retry_statuses)

    # -- writing ---------------------------------------------------------------------------
    def mark(
        self, ref: CheckpointRef, config_hash: str, status: str, scanned_at: datetime | None = None
    ) -> None:
        """Record that `ref` was scanned with `config_hash`, ending in `status`."""
        self.mark_many([(ref, status)], config_hash, scanned_at)

    def mark_many(
        self,
        items: Iterable[tuple[CheckpointRef, str]],
        config_hash: str,
        scanned_at: datetime | None = None,
    ) -> int:
        """Record many (ref, status) pairs in one atomic rewrite; returns how many."""
        if not isinstance(config_hash, str) or not config_hash:
            raise ConfigError(f"`config_hash` must be a non-empty string; got {config_hash!r}")
        when = (scanned_at or datetime.now(UTC)).astimezone(UTC)
        new = [
            LedgerEntry(*ref.key, config_hash, when, _check_status(status), weights_digest(ref))
            for ref, status in items
        ]
        if not new:
            return 0
        with self._locked():
            rows = self._read()
            rows.update((e.key, e) for e in new)
            self._write(sorted(rows.values(), key=lambda e: e.key))
        return len(new)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.filesystem is not None:
            yield
            return
        lock_path = Path(self.path + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, rows: list[LedgerEntry]) -> None:
        table = pa.Table.from_pylist([dataclasses.asdict(r) for r in rows], schema=LEDGER_SCHEMA)
        if self.filesystem is not None:
            pq.write_table(table, self.path, filesystem=self.filesystem)
            return
        final = Path(self.path)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, tmp)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


def unchanged_entry(
    entries: Iterable[LedgerEntry],
    ref: CheckpointRef,
    config_hash: str,
    retry_statuses: Collection[str] = ("failed",),
) -> LedgerEntry | None:
    """`Ledger.unchanged` over `entries` already read (a scan plan reads the ledger once)."""
    digest = weights_digest(ref)
    if digest is None:
        return None
    same = [
        e
        for e in entries
        if e.key[:2] == ref.key[:2]
        and e.scan_config_hash == config_hash
        and e.weights_sha256 == digest
        and e.revision != ref.revision
        and e.status not in retry_statuses
    ]
    return max(same, key=lambda e: e.scanned_at, default=None)


def _check_status(status: str) -> str:
    if not isinstance(status, str) or not status:
        raise ConfigError(f"`status` must be a non-empty string; got {status!r}")
    return status
