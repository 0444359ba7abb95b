"""The results store: atomic parts, checkpoints-last commit, crash recovery, the writer lock."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from results_factory import SCAN_A, SCAN_B, part

from dmsec.results.schema import SCHEMA_VERSION, SCHEMAS
from dmsec.results.store import ResultsError, ResultsStore, check_scan_id


def test_parts_are_partitioned_by_scan_date_and_fit_the_schema(results):
    store = ResultsStore(results)
    files = store.committed_files("checkpoints")
    assert [p.parent.name for p in files] == ["scan_date=2026-01-02"] * 2 + ["scan_date=2026-01-03"]
    for table in SCHEMAS:
        for path in store.committed_files(table):
            assert pq.read_schema(path).equals(SCHEMAS[table], check_metadata=True)
    assert store.read_table("matches").num_rows == 4
    assert set(store.read_table("checkpoints")["scan_date"].to_pylist()) == {
        "2026-01-02",
        "2026-01-03",
    }


def test_a_part_without_its_checkpoints_file_is_invisible_and_recovered(results):
    store = ResultsStore(results)
    tables = part("20260104T000000Z-cccccc", ["crashed"])
    # a crash after the data files, before the checkpoints file (the commit record)
    for table in ("candidates", "matches"):
        path = store.part_path(table, "2026-01-04", "20260104T000000Z-cccccc", 0)
        path.parent.mkdir(parents=True)
        pq.write_table(tables[table], path)
    tmp = store.table_dir("matches") / "scan_date=2026-01-04" / ".x.parquet.abc.tmp"
    tmp.write_bytes(b"half")
    assert store.read_table("matches").num_rows == 4  # the orphan is not read
    removed = store.recover()
    assert len(removed) == 3 and not tmp.exists()
    assert store.read_table("candidates").num_rows == 3


def test_committed_statuses_mark_retryable_errors_as_failed(results):
    store = ResultsStore(results)
    tables = part("20260105T000000Z-dddddd", ["broken"])
    from results_factory import checkpoint_row

    from dmsec.results.schema import to_table

    tables["checkpoints"] = to_table("checkpoints", [checkpoint_row("20260105T000000Z-dddddd", "broken", status="error", retryable=True)])  # fmt: skip
    store.commit_part("20260105T000000Z-dddddd", "2026-01-05", 0, tables)
    statuses = store.committed_statuses("h1")
    assert statuses[("local", "broken", "r1")] == "failed"
    assert statuses[("local", "full-7a", "r1")] == "ok"
    assert store.committed_statuses("other-hash") == {}


def test_lock_refuses_a_second_writer(tmp_path):
    store = ResultsStore(tmp_path)
    with store.lock(), pytest.raises(ResultsError, match="another writer"), store.lock():
        pass
    with store.lock():  # released
        pass


def test_scan_records_and_ids(results):
    store = ResultsStore(results)
    assert [r["scan_id"] for r in store.scan_records()] == [SCAN_A, SCAN_B]
    assert (
        json.loads((store.scan_dir(SCAN_A) / "run.json").read_text())["schema_version"]
        == SCHEMA_VERSION
    )
    with pytest.raises(ResultsError, match="`scan_id` must be"):
        check_scan_id("../etc")


def test_a_part_needs_every_table(results):
    tables = part("20260106T000000Z-eeeeee", ["x"])
    del tables["matches"]
    with pytest.raises(ResultsError, match="a part needs the tables"):
        ResultsStore(results).commit_part("20260106T000000Z-eeeeee", "2026-01-06", 0, tables)


def test_parts_of_the_previous_schema_still_read_with_nulls_in_new_columns(results):
    """Schema 2 added checkpoints.prompt and prompt_source; a folder written before still reads
    (through the store and through DuckDB) with those columns null for its old rows."""
    from dmsec.results.query import connect

    store = ResultsStore(results)
    old = store.committed_files("checkpoints")[0]
    pq.write_table(pq.read_table(old).drop_columns(["prompt", "prompt_source"]), old)
    table = store.read_table("checkpoints")
    assert table.num_rows == 3 and table["prompt"].null_count == 1
    rows = connect(results).sql("SELECT prompt_source FROM checkpoints").fetchall()
    assert sorted(r[0] or "" for r in rows) == ["", "card", "card"]
