"""DuckDB over a results folder: the tables as views, for `dmsec query`, notebooks and the report.

    con = connect("results")       # views: checkpoints, candidates, matches, scans, findings, triage
    con.sql("SELECT repo_id, count(*) FROM matches GROUP BY 1").df()
    query("results", "SELECT * FROM checkpoints WHERE status = 'error'")  # -> pyarrow.Table

Views read only committed part files (see `dmsec.results.store`) and add the `scan_date`
partition column (DATE). `scans` has one row per scan record (scan_id, started_at, status,
config_hash, counts as JSON). `findings` is derived when connecting (`dmsec.results.findings`:
one row per checkpoint revision x artwork, new first) and `triage` holds every recorded decision
(`dmsec.results.triage`). Tables with no rows yet are empty views of the right schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dmsec.results.findings import derive_findings
from dmsec.results.schema import PARTITION, TABLES, schema_of
from dmsec.results.store import ResultsError, ResultsStore
from dmsec.results.triage import read_triage
from dmsec.storage import is_s3

SCANS_SCHEMA = pa.schema(
    [
        pa.field("scan_id", pa.string()),
        pa.field("scan_date", pa.string()),
        pa.field("started_at", pa.string()),
        pa.field("finished_at", pa.string()),
        pa.field("status", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("source", pa.string()),
        pa.field("registry", pa.string()),
        pa.field("counts", pa.string()),
        pa.field("report", pa.string()),
    ]
)


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(root: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:  # fmt: skip
    """An in-memory DuckDB connection with the result tables of `root` as views (`root` on S3:
    read from a fresh local snapshot of its committed parts)."""
    store = ResultsStore(readable(root))
    if not store.root.exists():
        raise ResultsError(f"no results folder at {store.root}")
    con = con or duckdb.connect()
    for table in TABLES:
        files = store.committed_files(table)
        if files:
            con.execute(
                f"CREATE OR REPLACE VIEW {table} AS SELECT * EXCLUDE ({PARTITION}), "
                f"CAST({PARTITION} AS DATE) AS {PARTITION} FROM read_parquet({_sql_list(files)}, "
                "hive_partitioning = true, union_by_name = true)"  # parts of older schemas: nulls
            )
        else:
            empty = schema_of(table).append(pa.field(PARTITION, pa.date32())).empty_table()
            con.register(f"_{table}_empty", empty)
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM _{table}_empty")
    scans = pa.Table.from_pylist([_scan_row(r) for r in store.scan_records()], schema=SCANS_SCHEMA)
    con.register("_scans", scans)
    con.execute("CREATE OR REPLACE VIEW scans AS SELECT * FROM _scans")
    con.register("_findings", derive_findings(store.root))
    con.execute("CREATE OR REPLACE VIEW findings AS SELECT * FROM _findings")
    con.register("_triage", read_triage(store.root))
    con.execute("CREATE OR REPLACE VIEW triage AS SELECT * FROM _triage ORDER BY decided_at")
    return con


def readable(root: str | Path) -> str | Path:
    """`root` itself, or for `s3://...` a fresh local snapshot of its committed parts."""
    if is_s3(str(root)):
        from dmsec.results.remote import S3Results

        return S3Results(str(root)).snapshot()
    return root


def _scan_row(record: dict[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name in SCANS_SCHEMA.names}
    row["counts"] = json.dumps(record.get("counts") or {})
    return {k: (v if v is None or isinstance(v, str) else str(v)) for k, v in row.items()}


def query(root: str | Path, sql: str) -> pa.Table:
    """Run `sql` over the result tables of `root`; the answer as an Arrow table."""
    con = connect(root)
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise ResultsError(f"query failed: {exc}") from None
    finally:
        con.close()


def latest_scan_id(root: str | Path, with_rows: bool = True) -> str:
    """The newest scan in `root` (by default the newest that wrote checkpoint rows)."""
    store = ResultsStore(readable(root))
    if with_rows:
        ids = sorted({p.name.rsplit("-p", 1)[0] for p in store.committed_files("checkpoints")})
    else:
        ids = [r["scan_id"] for r in store.scan_records()]
    if not ids:
        raise ResultsError(f"no scan with results in {store.root}")
    return ids[-1]
