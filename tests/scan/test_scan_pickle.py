"""The pickle opt-in end to end (policy -> pull -> warm loading) on a local hub of the small zoo:
a pickle-only checkpoint is scanned when `pull.allow_pickle` is on and a clear skipped row when it
is off; a hostile pickle is an error row plus a `security` row naming the forbidden global, and
its payload never runs (a canary file is never created)."""

from __future__ import annotations

import pyarrow.parquet as pq
from scan_helpers import add_pickle_full, make_hub, scan_config

from dmsec.results.query import query
from dmsec.scan import run_scan


def _rows(out):
    return {r["repo_id"]: r for r in pq.read_table(out / "checkpoints").to_pylist()}


def test_scan_pickle_only_checkpoint_opted_in_is_scanned_and_a_hostile_one_is_a_security_row(small_zoo, zoo_registry, tmp_path):  # fmt: skip
    canary = tmp_path / "canary"
    hub = make_hub(tmp_path / "hub", small_zoo, ["base"])  # the base only
    plain = add_pickle_full(hub, small_zoo, "pickle-full")
    hostile = add_pickle_full(hub, small_zoo, "hostile-pickle", canary=canary)
    config = scan_config(hub, zoo_registry, tmp_path / "out", tmp_path / "cache",
                         pull={"allow_pickle": True}, extract={"n_samples": 16},
                         methods={"verifier": None}, run={"executor": "local"})  # fmt: skip
    summary = run_scan(config, echo=lambda _: None)
    rows = _rows(tmp_path / "out")
    assert set(rows) == {plain, hostile}
    assert rows[plain]["status"] == "ok", rows[plain]["error"]  # loaded from the pickle, scanned
    assert rows[plain]["n_samples"] == 16
    assert (rows[hostile]["status"], rows[hostile]["error_stage"]) == ("error", "pull")
    assert "posix.system" in rows[hostile]["error"] and not rows[hostile]["retryable"]
    assert not canary.exists(), "the hostile pickle's payload ran"
    security = query(tmp_path / "out", "SELECT repo_id, file, scanner, scanner_version, verdict, "
                     "globals FROM security ORDER BY repo_id").to_pylist()  # fmt: skip
    by_repo = {r["repo_id"]: r for r in security}
    assert set(by_repo) == {plain, hostile}
    assert by_repo[hostile]["verdict"] == "unsafe" and by_repo[hostile]["globals"] == ["posix.system"]  # fmt: skip
    assert by_repo[hostile]["file"] == "unet/diffusion_pytorch_model.bin"
    assert by_repo[plain]["verdict"] == "safe" and by_repo[plain]["globals"] == []
    assert all(r["scanner"] == "picklescan" and r["scanner_version"] for r in security)
    assert summary.counts() == {"ok": 1, "error": 1}


def test_scan_pickle_only_checkpoint_without_opt_in_is_a_clear_skipped_row(small_zoo, zoo_registry, tmp_path):  # fmt: skip
    canary = tmp_path / "canary"
    hub = make_hub(tmp_path / "hub", small_zoo, ["base"])  # the base only
    plain = add_pickle_full(hub, small_zoo, "pickle-full")
    hostile = add_pickle_full(hub, small_zoo, "hostile-pickle", canary=canary)
    config = scan_config(hub, zoo_registry, tmp_path / "out", tmp_path / "cache",
                         extract={"n_samples": 16}, methods={"verifier": None},
                         run={"executor": "local"})  # fmt: skip
    run_scan(config, echo=lambda _: None)
    rows = _rows(tmp_path / "out")
    for name in (plain, hostile):
        assert (rows[name]["status"], rows[name]["error_stage"]) == ("skipped", "pull")
        assert "only pickle-format weights" in rows[name]["error"]
        assert "allow_pickle" in rows[name]["error"]
    assert not (tmp_path / "cache" / "snapshots").exists() or not any(
        p.suffix == ".bin" for p in (tmp_path / "cache").rglob("*")
    ), "a refused pickle was downloaded"
    assert query(tmp_path / "out", "SELECT count(*) AS n FROM security").to_pylist() == [{"n": 0}]
    assert not canary.exists()
