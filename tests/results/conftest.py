"""Fixtures for dmsec.results: a results folder with two committed synthetic scans."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # results_factory, results_browser

from results_factory import SCAN_A, SCAN_B, part  # noqa: E402

from dmsec.results.store import ResultsStore  # noqa: E402


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """Scan A (2 checkpoints, 1 match each, two parts) and scan B (1 checkpoint, 2 matches)."""
    store = ResultsStore(tmp_path / "results")
    store.commit_part(SCAN_A, "2026-01-02", 0, part(SCAN_A, ["full-7a"]))
    store.commit_part(SCAN_A, "2026-01-02", 1, part(SCAN_A, ["lora-9a"]))
    store.commit_part(SCAN_B, "2026-01-03", 0, part(SCAN_B, ["full-7a"], matches_per_repo=2))
    for scan_id, date in ((SCAN_A, "2026-01-02"), (SCAN_B, "2026-01-03")):
        store.write_scan_record(scan_id, {"scan_id": scan_id, "scan_date": date,
                                          "started_at": f"{date}T03:04:05+00:00", "status": "finished"})  # fmt: skip
    return store.root
