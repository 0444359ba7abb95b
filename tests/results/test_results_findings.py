"""Findings derived from synthetic results: one row per revision x artwork, best and median,
support, evidence and confidence, first/last seen, new since the newest scan, triage."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from results_factory import SCAN_A, SCAN_B, part

from dmsec.results import connect
from dmsec.results.cli import triage as triage_cmd
from dmsec.results.findings import (
    FINDINGS,
    FINDINGS_FILE,
    confidence_of,
    derive_findings,
    evidence_kinds,
    finding_id,
    write_listed,
)
from dmsec.results.schema import to_table
from dmsec.results.store import ResultsError, ResultsStore
from dmsec.results.triage import read_triage, record_triage
from dmsec.scan.summary import ScanSummary

SCAN_C = "20260104T030405Z-cccccc"


def _by_key(root) -> dict[tuple[str, int], dict]:
    return {(f["repo_id"], f["artwork_id"]): f for f in derive_findings(root).to_pylist()}


def test_one_row_per_revision_and_artwork_across_scans(results):
    found = _by_key(results)
    assert set(found) == {("full-7a", 7), ("lora-9a", 7), ("full-7a", 8)}
    f = found[("full-7a", 7)]
    assert f["finding_id"] == finding_id("local", "full-7a", "r1", 7)
    assert (f["first_seen_scan"], f["scan_id"], f["last_seen_scan"], f["n_scans"]) == (SCAN_A, SCAN_B, SCAN_B, 2)  # fmt: skip
    assert not f["new"] and found[("full-7a", 8)]["new"]  # SCAN_B is the newest scan
    assert found[("lora-9a", 7)]["last_seen_scan"] == SCAN_A  # scan B did not list it
    assert derive_findings(results).schema.equals(FINDINGS)


def test_best_median_support_over_the_groups_that_hit_the_artwork(tmp_path):
    from results_factory import checkpoint_row, match_row

    scan = SCAN_A
    tables = part(scan, ["full-7a"])
    rows = [match_row(scan, "full-7a", "c1", f"m{i}", similarity=s, support=n, candidate_rank=i)
            for i, (s, n) in enumerate([(0.991, 1), (0.999, 3), (0.995, 2)])]  # fmt: skip
    tables["matches"] = to_table("matches", rows)
    tables["checkpoints"] = to_table("checkpoints", [checkpoint_row(scan, "full-7a", n_matches=3)])
    ResultsStore(tmp_path).commit_part(scan, "2026-01-02", 0, tables)
    (f,) = derive_findings(tmp_path).to_pylist()
    assert (f["best_similarity"], f["median_similarity"], f["best_match_id"]) == (0.999, 0.995, "m1")  # fmt: skip
    assert (f["support"], f["n_groups"]) == (6, 3)


@pytest.mark.parametrize(
    ("support", "status", "score", "masked", "gap", "kinds", "confidence"),
    [
        # DEFAULT_RULE: repeated at support >= 2; high also needs `distinct`, i.e. a margin,
        # which these bare signs lack, so none is high
        (5, "ok", 0.7, 0.6, 0.05, ["match", "repeated", "cgi-dm", "loss-gap"], "medium"),
        (2, "ok", 0.5, 0.6, -0.1, ["match", "repeated"], "medium"),
        (1, "ok", 0.5, 0.6, -0.1, ["match"], "low"),
        (1, "ok", 0.7, 0.6, -0.1, ["match", "cgi-dm"], "medium"),
        (1, "error", None, None, None, ["match"], "low"),
        (9, "disabled", None, None, None, ["match", "repeated"], "medium"),
    ],
)
def test_evidence_kinds_and_confidence(support, status, score, masked, gap, kinds, confidence):
    got = evidence_kinds(support, status, score, masked, gap)
    assert got == kinds and confidence_of(got) == confidence


def test_last_seen_follows_listings_and_new_clears_with_a_later_scan(results):
    store = ResultsStore(results)
    write_listed(store, SCAN_C, [("local", "lora-9a", "r1")])
    store.write_scan_record(SCAN_C, {"scan_id": SCAN_C, "started_at": "2026-01-04T03:04:05+00:00", "status": "finished"})  # fmt: skip
    found = _by_key(results)
    assert not any(f["new"] for f in found.values())
    assert found[("lora-9a", 7)]["last_seen_scan"] == SCAN_C  # listed again, still standing
    assert found[("full-7a", 7)]["last_seen_scan"] == SCAN_B  # gone from the listing


def test_a_running_scan_without_rows_does_not_clear_new(results):
    store = ResultsStore(results)
    store.write_scan_record(SCAN_C, {"scan_id": SCAN_C, "status": "running"})
    assert _by_key(results)[("full-7a", 8)]["new"]


def test_triage_latest_decision_wins_and_is_kept_over_rescans(results):
    fid = finding_id("local", "full-7a", "r1", 7)
    record_triage(results, fid, "escalated", "looks like a copy", by="ana")
    record_triage(results, fid, "dismissed", "licensed to the uploader", by="bo")
    assert read_triage(results).num_rows == 2
    ResultsStore(results).commit_part(SCAN_C, "2026-01-04", 0, part(SCAN_C, ["full-7a"]))
    f = _by_key(results)[("full-7a", 7)]
    assert (f["triage_status"], f["triage_note"], f["triage_by"]) == ("dismissed", "licensed to the uploader", "bo")  # fmt: skip
    assert f["scan_id"] == SCAN_C and f["first_seen_scan"] == SCAN_A
    assert pq.read_table(results / FINDINGS_FILE).num_rows == 3  # refreshed by the triage
    con = connect(results)
    assert con.sql("SELECT status FROM triage ORDER BY decided_at").fetchall() == [("escalated",), ("dismissed",)]  # fmt: skip
    assert con.sql("SELECT triage_status FROM findings WHERE finding_id = ?", params=[fid]).fetchall() == [("dismissed",)]  # fmt: skip


def test_triage_refuses_unknown_ids_bad_status_and_empty_notes(results):
    with pytest.raises(ResultsError, match="is not a finding"):
        record_triage(results, "0" * 16, "confirmed", "x")
    with pytest.raises(ResultsError, match="`status` must be one of"):
        record_triage(results, finding_id("local", "full-7a", "r1", 7), "maybe", "x")
    with pytest.raises(ResultsError, match="`note` must say why"):
        record_triage(results, finding_id("local", "full-7a", "r1", 7), "confirmed", "  ")
    out = CliRunner().invoke(triage_cmd, ["abc", "--status", "confirmed", "--note", "x", "--results", str(results)])  # fmt: skip
    assert out.exit_code == 1 and "dmsec query" in out.output


def _summary(new: list[str], dismissed: frozenset[str] = frozenset(), error: bool = False) -> ScanSummary:  # fmt: skip
    s = ScanSummary(scan_id="s", out="o")
    s.findings = [{"finding_id": f, "new": True, "triage_status": "dismissed" if f in dismissed else None,
                   "confidence": "low"} for f in new]  # fmt: skip
    s.checkpoints = [{"repo_id": "r", "status": "error" if error else "ok", "error_stage": "pull",
                      "error": "bad" if error else None, "retryable": False, "timings": {}}]  # fmt: skip
    return s


def test_exit_code_follows_fail_on():
    assert _summary(["a"], error=True).exit_code(()) == 0
    assert _summary(["a"]).exit_code(["new-findings"]) == 3
    assert _summary([], error=True).exit_code(["errors"]) == 4
    assert _summary(["a"], error=True).exit_code(["new-findings", "errors"]) == 5
    assert _summary(["a"], error=True).exit_code(["errors"]) == 4
    assert _summary(["a"], dismissed=frozenset({"a"})).exit_code(["new-findings"]) == 0
    assert _summary([]).exit_code(["new-findings", "errors"]) == 0
    with pytest.raises(ValueError, match="fail_on"):
        _summary([]).exit_code(["warnings"])
