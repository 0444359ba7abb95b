"""The S3 results lock (a local moto_server): a heartbeat keeps a long writer's lock live, a
holder that stopped renewing loses it and then stops publishing, and `dmsec triage` on S3 takes
the lock (waits for a running writer, then publishes its decision and the findings)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmsec.results.cli import triage as triage_cli
from dmsec.results.findings import derive_findings
from dmsec.results.remote import LOCK_NAME, S3Results
from dmsec.results.store import ResultsError
from dmsec.results.triage import record_triage


@pytest.fixture
def bucket(moto_endpoint, monkeypatch, tmp_path) -> str:
    monkeypatch.setenv("DMSEC_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("DMSEC_CACHE", str(tmp_path / "cache"))  # triage's mirror and snapshot
    name = f"lock-{id(monkeypatch):x}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


def _s3():
    return boto3.client("s3", endpoint_url=os.environ["DMSEC_S3_ENDPOINT_URL"])


def _exists(bucket: str, key: str) -> bool:
    return "Contents" in _s3().list_objects_v2(Bucket=bucket, Prefix=key)


def test_heartbeat_keeps_a_writer_that_outlives_stale_after_s(bucket, tmp_path) -> None:
    uri = f"s3://{bucket}/scans"
    long = S3Results(uri, tmp_path / "a", stale_after_s=2.0, heartbeat_s=0.3)
    other = S3Results(uri, tmp_path / "b", stale_after_s=2.0)
    with long.lock() as held:
        time.sleep(4.0)  # twice stale_after_s: without renewals the lock would look dead
        with pytest.raises(ResultsError, match="another writer holds"), other.lock():
            pass
        assert held.renewals >= 5, held.renewals
        held.check()  # still ours
    assert not _exists(bucket, f"scans/{LOCK_NAME}")  # released
    with other.lock():
        pass


def test_heartbeat_stopped_lock_is_taken_over_and_the_stalled_writer_stops(bucket, tmp_path) -> None:  # fmt: skip
    uri = f"s3://{bucket}/scans"
    stalled = S3Results(uri, tmp_path / "a", stale_after_s=1.5, heartbeat_s=0.3)
    other = S3Results(uri, tmp_path / "b", stale_after_s=1.5)
    note = stalled.store.root / "note.txt"
    with contextlib.ExitStack() as stack:
        held = stack.enter_context(stalled.lock())
        held._stop.set()  # the writer stalls: no more heartbeats (a long GC pause, a frozen pod)
        assert held._thread is not None
        held._thread.join()
        time.sleep(3.0)
        with other.lock() as taken:  # not renewed for stale_after_s: taken over
            held.renew()  # the stalled writer wakes up and finds another token
            assert held.lost and "taken over" in held.lost
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text("late")
            with pytest.raises(ResultsError, match="taken over"):
                stalled.publish([note])
            assert not _exists(bucket, "scans/note.txt"), "a writer without the lock wrote"
            stack.close()  # the stalled writer releases: the new holder's lock stays
            assert _exists(bucket, f"scans/{LOCK_NAME}")
            taken.check()
    assert not _exists(bucket, f"scans/{LOCK_NAME}")


def _upload(folder: Path, bucket: str, prefix: str) -> None:
    client = _s3()
    for path in folder.rglob("*"):
        if path.is_file() and path.name != ".lock":
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_triage_s3_waits_for_the_writer_then_publishes_decision_and_findings(results, bucket, tmp_path) -> None:  # fmt: skip
    _upload(results, bucket, "scans")
    uri = f"s3://{bucket}/scans"
    finding = derive_findings(results).column("finding_id")[0].as_py()
    scan = S3Results(uri, tmp_path / "scan", heartbeat_s=0.2)
    with scan.lock():  # a scan is writing: triage without waiting is refused, nothing written
        result = CliRunner().invoke(triage_cli, [finding, "--status", "dismissed", "--note",
                                                 "own work", "--results", uri, "--wait", "0"])  # fmt: skip
        assert result.exit_code != 0 and "another writer holds" in result.output, result.output
    assert not _keys(bucket, "scans/triage/")

    released = threading.Event()

    def scan_then_release() -> None:
        with scan.lock():
            time.sleep(2.0)
        released.set()

    writer = threading.Thread(target=scan_then_release)
    writer.start()
    time.sleep(0.5)  # the scan holds the lock now
    row, where = record_triage(uri, finding, "confirmed", "copies the artwork", by="t", wait_s=30)
    assert released.is_set(), "triage wrote while the scan held the lock"
    writer.join()
    assert where.startswith(f"{uri}/triage/")
    assert len(_keys(bucket, "scans/triage/")) == 1
    local = tmp_path / "findings.parquet"
    _s3().download_file(bucket, "scans/findings/findings.parquet", str(local))
    statuses = {r["finding_id"]: r["triage_status"] for r in pq.read_table(local).to_pylist()}
    assert statuses[finding] == "confirmed"
    assert not _exists(bucket, f"scans/{LOCK_NAME}")  # triage released its lock


def test_triage_local_takes_the_folders_lock(results) -> None:
    from dmsec.results.store import ResultsStore

    finding = derive_findings(results).column("finding_id")[0].as_py()
    with ResultsStore(results).lock(), pytest.raises(ResultsError, match="another writer"):
        record_triage(results, finding, "dismissed", "own work", by="t", wait_s=0)
    row, _ = record_triage(results, finding, "dismissed", "own work", by="t", wait_s=0)
    assert row["status"] == "dismissed"


def _keys(bucket: str, prefix: str) -> list[str]:
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
