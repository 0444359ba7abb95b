"""Results, registry and ledger on S3 (a local moto_server): the commit protocol holds in the
bucket across a crash, a fresh machine (empty mirror) resumes from the bucket alone, orphan parts
are removed, every checkpoint lands exactly once, and one writer holds the bucket's lock."""

from __future__ import annotations

import os

import boto3
import pyarrow.parquet as pq
import pytest
from scan_helpers import Crash, crashing_after, make_hub, scan_config

from dmsec.results.query import query
from dmsec.results.remote import S3Results
from dmsec.results.report import write_report
from dmsec.results.store import ResultsError
from dmsec.scan import build_zoo_registry, run_scan
from dmsec.scan.local import local_executor


@pytest.fixture
def bucket(moto_endpoint, monkeypatch) -> str:
    monkeypatch.setenv("DMSEC_S3_ENDPOINT_URL", moto_endpoint)
    name = f"results-{id(monkeypatch):x}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


def _s3():
    return boto3.client("s3", endpoint_url=os.environ["DMSEC_S3_ENDPOINT_URL"])


def _keys(bucket: str, prefix: str) -> list[str]:
    client = _s3()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.mark.slow
def test_scan_to_s3_survives_a_crash_and_a_fresh_machine(small_zoo, bucket, tmp_path, monkeypatch):
    hub = make_hub(tmp_path / "hub", small_zoo)
    registry = f"s3://{bucket}/registry"
    build_zoo_registry(small_zoo.root, registry)
    out = f"s3://{bucket}/scans"
    config = scan_config(hub, registry, out, tmp_path / "cache",  # type: ignore[arg-type]
                         extract={"n_samples": 64}, methods={"verifier": None},
                         results={"flush_every": 1}, run={"executor": "local"})  # fmt: skip
    monkeypatch.setenv("DMSEC_CACHE", str(tmp_path / "machine-1"))
    with pytest.raises(Crash):
        run_scan(config, crashing_after(2), echo=lambda _: None)
    keys = _keys(bucket, "scans/")
    assert sum(k.startswith("scans/checkpoints/") for k in keys) == 2
    assert "scans/ledger.parquet" in keys and "scans/.lock" not in keys  # released on the crash
    # a half-published part: its candidates file is there, its checkpoints file never came
    orphan = next(k for k in keys if k.startswith("scans/candidates/"))
    planted = orphan.rsplit("/", 1)[0] + "/20990101T000000Z-orphan-p00000.parquet"
    _s3().copy_object(Bucket=bucket, Key=planted, CopySource={"Bucket": bucket, "Key": orphan})  # fmt: skip

    monkeypatch.setenv("DMSEC_CACHE", str(tmp_path / "machine-2"))  # a fresh pod: empty mirror
    lines: list[str] = []
    summary = run_scan(config, local_executor, echo=lines.append)
    assert any("removed 1 uncommitted" in line for line in lines), lines
    assert summary.already_scanned == 2
    assert len(summary.checkpoints) == len(small_zoo.fine_tunes) - 2
    assert summary.out == out and summary.report and summary.report.startswith(out)
    assert planted not in _keys(bucket, "scans/")

    rows = query(out, "SELECT repo_id, revision FROM checkpoints").to_pylist()
    assert sorted(r["repo_id"] for r in rows) == sorted(e.name for e in small_zoo.fine_tunes)
    heavy = small_zoo.select(method="full", strength="heavy", protected=True)[0].name
    matched = query(out, "SELECT DISTINCT repo_id FROM matches").column("repo_id").to_pylist()
    assert heavy in matched
    keys = _keys(bucket, "scans/")
    assert any(k.startswith("scans/reports/") and k.endswith(".html") for k in keys)
    assert sum(k.endswith("/run.json") for k in keys) == 2
    # the ledger in the bucket knows every checkpoint: a third run scans nothing
    ledger = pq.read_table(S3Results(out).download("ledger.parquet"))
    assert ledger.num_rows == len(small_zoo.fine_tunes)
    again = run_scan(config, local_executor, echo=lambda _: None)
    assert again.already_scanned == len(small_zoo.fine_tunes) and not again.checkpoints
    # an analyst's report from the bucket, written where they say
    page = write_report(out, summary.scan_id, out=tmp_path / "report.html").read_text()
    assert summary.scan_id in page
    assert all(c["repo_id"] in page for c in summary.checkpoints)
    with pytest.raises(ResultsError, match="give `out`"):
        write_report(out)


def test_one_writer_per_s3_results_location(bucket, tmp_path) -> None:
    first = S3Results(f"s3://{bucket}/scans", tmp_path / "a")
    second = S3Results(f"s3://{bucket}/scans", tmp_path / "b")
    with first.lock(), pytest.raises(ResultsError, match="another writer"), second.lock():
        pass
    with second.lock():  # released: free again
        pass
    stale = S3Results(f"s3://{bucket}/scans", tmp_path / "c", stale_after_s=0.0)
    with first.lock(), stale.lock():  # a lock older than stale_after_s is taken over
        pass


def test_s3_results_location_must_name_a_bucket(tmp_path) -> None:
    with pytest.raises(ResultsError, match="s3://bucket/prefix"):
        S3Results("s3:///scans", tmp_path)


@pytest.mark.slow
def test_triage_s3_during_a_scan_waits_for_its_lock_and_nothing_is_lost(small_zoo, bucket, tmp_path, monkeypatch):  # fmt: skip
    """A scan and `dmsec triage` on one S3 location at once: triage waits for the scan's lock,
    then records its decision; the scan's rows and the decision both survive, and the published
    findings carry the decision."""
    import shutil
    import threading
    import time

    from dmsec.results.triage import record_triage

    heavy = small_zoo.select(method="full", strength="heavy", protected=True)[0].name
    control = small_zoo.select(protected=False)[0].name
    hub = make_hub(tmp_path / "hub", small_zoo, [heavy])
    registry = f"s3://{bucket}/registry"
    build_zoo_registry(small_zoo.root, registry)
    out = f"s3://{bucket}/scans"
    config = scan_config(hub, registry, out, tmp_path / "cache",  # type: ignore[arg-type]
                         extract={"n_samples": 64}, methods={"verifier": None},
                         run={"executor": "local"})  # fmt: skip
    monkeypatch.setenv("DMSEC_CACHE", str(tmp_path / "machine"))
    run_scan(config, local_executor, echo=lambda _: None)
    (finding,) = query(out, "SELECT finding_id FROM findings").column("finding_id").to_pylist()[:1]
    entry = next(e for e in small_zoo.entries if e.name == control)
    shutil.copytree(small_zoo.root / entry.path, hub / entry.path)  # something new to scan

    done: dict[str, object] = {}

    def analyst() -> None:
        done["row"] = record_triage(out, finding, "confirmed", "copies the artwork", by="t", wait_s=300)  # fmt: skip
        done["at"] = time.monotonic()

    thread = threading.Thread(target=analyst)

    def executor(items, resolved, staging):
        thread.start()
        time.sleep(2.0)
        assert thread.is_alive(), "triage did not wait for the scan's lock"
        yield from local_executor(items, resolved, staging)

    summary = run_scan(config, executor, echo=lambda _: None)
    ended = time.monotonic()
    thread.join(timeout=300)
    assert "row" in done and done["at"] >= ended - 1.0, "triage wrote while the scan held the lock"
    assert summary.counts() == {"ok": 1}
    rows = query(out, "SELECT repo_id FROM checkpoints").column("repo_id").to_pylist()
    assert sorted(rows) == sorted([heavy, control])
    assert query(out, "SELECT count(*) AS n FROM triage").to_pylist() == [{"n": 1}]
    local = tmp_path / "findings.parquet"
    _s3().download_file(bucket, "scans/findings/findings.parquet", str(local))
    published = {r["finding_id"]: r["triage_status"] for r in pq.read_table(local).to_pylist()}
    assert published[finding] == "confirmed"
    assert "scans/.lock" not in _keys(bucket, "scans/")
