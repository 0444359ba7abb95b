"""DuckDB views over a results folder, pandas and pyarrow readers, and `dmsec query`."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow.dataset as ds
from click.testing import CliRunner
from results_factory import SCAN_A, SCAN_B

from dmsec.results import connect, latest_scan_id, query
from dmsec.results.cli import query as query_cmd
from dmsec.results.schema import SCHEMAS


def test_views_join_and_partition_column(results):
    con = connect(results)
    rows = con.sql(
        "SELECT c.repo_id, m.artwork_owner, count(*) AS n, min(m.scan_date) AS first_seen "
        "FROM matches m JOIN checkpoints c USING (scan_id, source, repo_id, revision) "
        "GROUP BY 1, 2 ORDER BY 1"
    ).fetchall()
    assert rows == [("full-7a", "Studio X", 3, dt.date(2026, 1, 2)), ("lora-9a", "Studio X", 1, dt.date(2026, 1, 2))]  # fmt: skip
    assert con.sql("SELECT count(*) FROM scans").fetchall() == [(2,)]


def test_empty_results_give_empty_views_with_the_schema(tmp_path):
    (tmp_path / "r").mkdir()
    con = connect(tmp_path / "r")
    for table, schema in SCHEMAS.items():
        cols = [d[0] for d in con.sql(f"SELECT * FROM {table}").description]
        assert cols == [*schema.names, "scan_date"]


def test_query_and_latest_scan(results):
    assert latest_scan_id(results) == SCAN_B
    table = query(results, f"SELECT match_id FROM matches WHERE scan_id = '{SCAN_A}' ORDER BY 1")
    assert table.num_rows == 2


def test_pandas_and_pyarrow_read_the_tables_directly(results):
    df = pd.read_parquet(results / "matches")
    assert len(df) == 4 and set(df["scan_date"].astype(str)) == {"2026-01-02", "2026-01-03"}
    table = ds.dataset(results / "checkpoints", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3


def test_query_cli_prints_a_table_and_hides_image_bytes(results):
    out = CliRunner().invoke(query_cmd, ["SELECT repo_id, recovered_image FROM matches ORDER BY 1", "--results", str(results)])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "full-7a" in out.output and "bytes>" in out.output and "(4 rows)" in out.output
    bad = CliRunner().invoke(query_cmd, ["SELECT nope FROM matches", "--results", str(results)])
    assert bad.exit_code != 0 and "query failed" in bad.output
