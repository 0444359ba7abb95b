"""Analysts' decisions on findings: the append-only `triage` table.

    dmsec triage FINDING_ID --status dismissed --note "the artist's own fine-tune" [--results DIR]

Each decision is one row in its own file, `triage/<UTC time>-<random>.parquet`, written atomically
and never changed afterwards, so decisions are a log (who, when, why) and concurrent writers never
collide. The latest decision per finding (by `decided_at`) is the finding's status in `findings`
and the report. Decisions are keyed by `finding_id` (checkpoint revision x artwork, no scan id),
so they survive rescans: a dismissed finding stays dismissed when a later scan sees it again.

triage (one row per decision)
    triage_id, finding_id, status ("confirmed" | "dismissed" | "escalated"), note,
    decided_by ($DMSEC_USER, else the login name, "@host"), decided_at (UTC timestamp)
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dmsec.results.store import ResultsError, ResultsStore, atomic_write_parquet
from dmsec.storage import is_s3

TRIAGE_STATUSES = ("confirmed", "dismissed", "escalated")
TRIAGE_DIR = "triage"
TRIAGE = pa.schema(
    [
        pa.field("triage_id", pa.string(), nullable=False),
        pa.field("finding_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("note", pa.string(), nullable=False),
        pa.field("decided_by", pa.string(), nullable=False),
        pa.field("decided_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
    metadata={b"dmsec.schema": b"triage/1"},
)


def who() -> str:
    """The person recording a decision: $DMSEC_USER, else `<login>@<host>`."""
    if os.environ.get("DMSEC_USER"):
        return os.environ["DMSEC_USER"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def triage_files(root: str | Path) -> list[Path]:
    """Every decision file under `root`, oldest first (names start with the UTC time)."""
    folder = Path(root) / TRIAGE_DIR
    return sorted(folder.glob("*.parquet")) if folder.exists() else []


def read_triage(root: str | Path) -> pa.Table:
    """Every decision recorded under `root` (empty table of the schema when none)."""
    files = triage_files(root)
    if not files:
        return TRIAGE.empty_table()
    return pa.concat_tables([pq.read_table(p).cast(TRIAGE) for p in files])


def record_decision(
    root: str | Path,
    finding_id: str,
    status: str,
    note: str,
    by: str | None = None,
    known: set[str] | None = None,
) -> tuple[dict[str, object], Path]:
    """Append one decision on `finding_id`; (the row, its file). `known`: the finding ids of the
    results location (an unknown id is an error that says where to look them up)."""
    if status not in TRIAGE_STATUSES:
        raise ResultsError(f"`status` must be one of {TRIAGE_STATUSES}; got {status!r}")
    if not note or not note.strip():
        raise ResultsError("`note` must say why (e.g. --note 'matches the artist's own LoRA')")
    if known is not None and finding_id not in known:
        raise ResultsError(
            f"`finding_id` {finding_id!r} is not a finding of {root}; list them with "
            'dmsec query "SELECT finding_id, repo_id, artwork_title FROM findings"'
        )
    now = datetime.now(UTC)
    row = {"triage_id": uuid.uuid4().hex[:16], "finding_id": finding_id, "status": status,
           "note": note.strip(), "decided_by": by or who(), "decided_at": now}  # fmt: skip
    path = Path(root) / TRIAGE_DIR / f"{now:%Y%m%dT%H%M%S%fZ}-{row['triage_id']}.parquet"
    atomic_write_parquet(path, pa.Table.from_pylist([row], schema=TRIAGE))
    return row, path


def latest_decisions(triage: pa.Table) -> dict[str, dict[str, object]]:
    """finding_id -> its latest decision row (by `decided_at`, then file order)."""
    latest: dict[str, dict[str, object]] = {}
    for row in triage.to_pylist():
        old = latest.get(row["finding_id"])
        if old is None or row["decided_at"] >= old["decided_at"]:
            latest[row["finding_id"]] = row
    return latest


def record_triage(root: str | Path, finding_id: str, status: str, note: str, by: str | None = None, wait_s: float = 60.0) -> tuple[dict[str, object], str]:  # fmt: skip
    """`dmsec triage`: under the results location's writer lock (waiting up to `wait_s` for a
    running scan or triage to release it), check `finding_id` is a finding of `root` (a folder or
    `s3://bucket/prefix`), append the decision, refresh `findings/findings.parquet`; returns (the
    row, where the decision was written). Holding the lock keeps a concurrent scan from
    overwriting the refreshed findings with its own, older view; a scan that ends later derives
    its findings from everything in the location, this decision included."""
    from dmsec.results.findings import FINDINGS_FILE, derive_findings, write_findings

    if not is_s3(str(root)):
        store = ResultsStore(root)
        if not store.root.exists():
            raise ResultsError(f"no results folder at {store.root}; pass --results DIR")
        with store.lock(wait_s):
            known = set(derive_findings(store.root).column("finding_id").to_pylist())
            row, path = record_decision(store.root, finding_id, status, note, by, known)
            write_findings(store.root)
        return row, str(path)
    from dmsec.results.remote import S3Results

    remote = S3Results(str(root))
    with remote.lock(wait_s):
        snapshot = remote.snapshot()
        known = set(derive_findings(snapshot).column("finding_id").to_pylist())
        row, path = record_decision(remote.store.root, finding_id, status, note, by, known)
        remote.publish([path])
        (snapshot / TRIAGE_DIR).mkdir(exist_ok=True)
        shutil.copy(path, snapshot / TRIAGE_DIR / path.name)
        _, findings = write_findings(snapshot)
        mirrored = remote.store.root / FINDINGS_FILE
        mirrored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(findings, mirrored)
        remote.publish([mirrored])
    return row, f"{remote.uri}/{TRIAGE_DIR}/{path.name}"
