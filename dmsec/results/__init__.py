"""Scan results: versioned Parquet schemas, the atomic per-scan store, DuckDB queries, the report.

    from dmsec.results import ResultsStore, connect, query, write_report
    con = connect("results")        # DuckDB views: checkpoints, candidates, matches, scans
    write_report("results")         # results/reports/<newest scan>.html

Schemas and layout: `dmsec.results.schema`; commit protocol: `dmsec.results.store`.
"""

from dmsec.results.query import connect, latest_scan_id, query
from dmsec.results.report import build_report, write_report
from dmsec.results.schema import SCHEMA_VERSION, SCHEMAS, TABLES, SchemaError, schema_of
from dmsec.results.store import ResultsError, ResultsStore

__all__ = [
    "SCHEMAS",
    "SCHEMA_VERSION",
    "TABLES",
    "ResultsError",
    "ResultsStore",
    "SchemaError",
    "build_report",
    "connect",
    "latest_scan_id",
    "query",
    "schema_of",
    "write_report",
]
