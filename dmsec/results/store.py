"""A results folder on local disk: atomic per-scan part files, crash recovery, scan records.

Commit protocol. A scan writes its findings in parts (every few finished checkpoints). A part is
one file per table named `<scan_id>-pNNNNN.parquet` under the table's `scan_date=` partition;
each file is written to a hidden temporary name and renamed into place (atomic on one file
system). `candidates` and `matches` go first and `checkpoints` last: the checkpoints file is the
part's commit record. A part whose checkpoints file is missing (a crash between the renames) is
an orphan: readers through `committed_files` never see it and `recover()`, run under the scan
lock before every scan, deletes it. The ledger is marked only after a part is committed, and a
new scan first re-marks the ledger from committed checkpoint rows, so a crash at any point
neither loses nor duplicates rows.

One scan writes to a results folder at a time (`lock()`, an exclusive `fcntl` lock on `.lock`);
any number of readers may read it. Object stores are not supported here (known limit).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dmsec.errors import DmsecError
from dmsec.results.schema import PART_TABLES, PARTITION, SCHEMA_VERSION, TABLES, check_table

_PART = re.compile(r"^(?P<scan>[A-Za-z0-9_.-]+)-p(?P<part>\d{5})\.parquet$")
_SCAN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class ResultsError(DmsecError):
    """A results folder is missing, locked or inconsistent; the message says which and why."""


def check_scan_id(scan_id: str) -> str:
    """A scan id is used in file names: letters, digits, `_`, `.` and `-` only."""
    if not isinstance(scan_id, str) or not _SCAN_ID.match(scan_id):
        raise ResultsError(f"`scan_id` must be letters, digits, '_', '.' or '-'; got {scan_id!r}")
    return scan_id


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    """Write `table` to `path` as zstd Parquet, atomically (`atomic_write_bytes`)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


class ResultsStore:
    """The results folder at `root`; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    # -- paths ---------------------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        """The scan ledger (`dmsec.hub.Ledger`) of this results folder."""
        return self.root / "ledger.parquet"

    def table_dir(self, table: str) -> Path:
        """The folder of result table `table`."""
        if table not in TABLES:
            raise ResultsError(f"`table` must be one of {TABLES}; got {table!r}")
        return self.root / table

    def part_path(self, table: str, scan_date: str, scan_id: str, part: int) -> Path:
        """Where part `part` of scan `scan_id` goes in `table`."""
        name = f"{check_scan_id(scan_id)}-p{part:05d}.parquet"
        return self.table_dir(table) / f"{PARTITION}={scan_date}" / name

    def scan_dir(self, scan_id: str) -> Path:
        """The scan's record folder (config.yaml, run.json)."""
        return self.root / "scans" / check_scan_id(scan_id)

    def staging_dir(self, scan_id: str) -> Path:
        """Scratch space for the scan's stages (generations, evidence), deleted after commits."""
        return self.root / "_staging" / check_scan_id(scan_id)

    def report_path(self, scan_id: str) -> Path:
        """The default location of the scan's HTML report."""
        return self.root / "reports" / f"{check_scan_id(scan_id)}.html"

    # -- locking and recovery ------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the folder's writer lock (a scan's, or `dmsec triage`'s); fail if another writer
        holds it, after waiting up to `wait_s` seconds for it to end."""
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        with (self.root / ".lock").open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise ResultsError(f"another writer (a scan or a triage) holds {self.root}; retry when it ends") from None  # fmt: skip
                    time.sleep(min(1.0, wait_s))
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _files(self, table: str) -> list[Path]:
        folder = self.table_dir(table)
        return sorted(folder.glob(f"{PARTITION}=*/*.parquet")) if folder.exists() else []

    def committed_files(self, table: str) -> list[Path]:
        """Part files of `table` whose part is committed (its checkpoints file exists)."""
        committed = {p.name for p in self._files("checkpoints")}
        return [p for p in self._files(table) if p.name in committed and _PART.match(p.name)]

    def recover(self) -> list[Path]:
        """Delete orphan parts and temporary files left by a crash; returns what was removed.

        Call only under `lock()`: a running scan's half-written part looks like an orphan.
        """
        committed = {p.name for p in self._files("checkpoints")}
        removed = []
        for table in TABLES:
            folder = self.table_dir(table)
            if not folder.exists():
                continue
            for path in folder.glob(f"{PARTITION}=*/*"):
                orphan = path.suffix == ".parquet" and path.name not in committed
                if path.name.endswith(".tmp") or orphan:
                    path.unlink()
                    removed.append(path)
        return removed

    # -- writing -------------------------------------------------------------------------------
    def commit_part(
        self, scan_id: str, scan_date: str, part: int, tables: dict[str, pa.Table]
    ) -> dict[str, int]:
        """Write one part of every table (checkpoints last, as the commit record); row counts.
        `security` may be left out (no verdicts); the other tables are required."""
        if not set(PART_TABLES) <= set(tables) <= set(TABLES):
            raise ResultsError(f"a part needs the tables {PART_TABLES} (and may have security); got {sorted(tables)}")  # fmt: skip
        counts = {}
        for table in ("candidates", "matches", "security", "checkpoints"):
            if table not in tables:
                counts[table] = 0
                continue
            data = tables[table]
            check_table(table, data)
            counts[table] = data.num_rows
            if data.num_rows == 0 and table != "checkpoints":
                continue
            atomic_write_parquet(self.part_path(table, scan_date, scan_id, part), data)
        return counts

    def write_scan_record(self, scan_id: str, record: dict[str, Any], config_yaml: str | None = None) -> Path:  # fmt: skip
        """Write `scans/<scan_id>/run.json` (and the resolved `config.yaml`) atomically."""
        folder = self.scan_dir(scan_id)
        if config_yaml is not None:
            atomic_write_bytes(folder / "config.yaml", config_yaml.encode())
        record = {"schema_version": SCHEMA_VERSION, **record}
        atomic_write_bytes(folder / "run.json", json.dumps(record, indent=2, default=str).encode())
        return folder

    # -- reading -------------------------------------------------------------------------------
    def read_table(self, table: str) -> pa.Table:
        """Every committed row of `table`, with the `scan_date` partition column."""
        from dmsec.results.schema import schema_of

        parts = []
        for path in self.committed_files(table):
            data = pq.read_table(path)
            date = path.parent.name.split("=", 1)[1]
            parts.append(data.append_column(PARTITION, pa.array([date] * data.num_rows, pa.string())))  # fmt: skip
        if not parts:
            schema = schema_of(table).append(pa.field(PARTITION, pa.string()))
            return schema.empty_table()
        return pa.concat_tables(parts, promote_options="default")  # older schemas: nulls

    def committed_statuses(self, config_hash: str) -> dict[tuple[str, str, str], str]:
        """(source, repo_id, revision) -> ledger status of committed rows scanned with `config_hash`.

        The ledger status is the row's status, or "failed" for retryable errors.
        """
        out: dict[tuple[str, str, str], str] = {}
        for path in self.committed_files("checkpoints"):
            cols = ["source", "repo_id", "revision", "scan_config_hash", "status", "retryable"]
            for row in pq.read_table(path, columns=cols).to_pylist():
                if row["scan_config_hash"] == config_hash:
                    key = (row["source"], row["repo_id"], row["revision"])
                    out[key] = "failed" if row["retryable"] else row["status"]
        return out

    def scan_records(self) -> list[dict[str, Any]]:
        """Every scan's run.json, oldest first."""
        records = []
        for path in sorted((self.root / "scans").glob("*/run.json")):
            try:
                records.append(json.loads(path.read_text()))
            except json.JSONDecodeError as exc:
                raise ResultsError(f"{path}: unreadable scan record ({exc})") from None
        return sorted(records, key=lambda r: (r.get("started_at") or "", r.get("scan_id") or ""))
