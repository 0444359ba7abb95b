"""Stages without Ray: failure isolation, matching whole groups, and the local executor end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from scan_helpers import (
    Crash,
    add_misfit_lora,
    add_truncated_lora,
    crashing_after,
    make_hub,
    scan_config,
)

from dmsec.errors import CheckpointError
from dmsec.hub.source import HubError
from dmsec.images import save_png
from dmsec.scan.config import MatchSettings
from dmsec.scan.hits import Group
from dmsec.scan.local import local_executor
from dmsec.scan.records import ScanItem, batch_from_items
from dmsec.scan.runner import run_scan
from dmsec.scan.stages import MatchStage, Stage
from dmsec.scan.stages.extract import sample_name

REF = {"source": "local", "repo_id": "a/b", "revision": "r1", "kind": "full", "base_model": "base"}


class _Raises(Stage):
    name = "extract"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def process(self, item: ScanItem) -> None:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [(CheckpointError("w.safetensors", "bad"), False), (ValueError("x"), False),
     (HubError("503"), True), (RuntimeError("CUDA out of memory"), True)],
)  # fmt: skip
def test_a_failing_stage_makes_an_error_item_and_never_raises(exc, retryable):
    items = [ScanItem(ref=dict(REF), scan_id="s", config_hash="h"), ScanItem(ref={**REF, "repo_id": "c/d"}, scan_id="s", config_hash="h")]  # fmt: skip
    items[1].skip("pull", "pickle only")
    out = _Raises(exc)(batch_from_items(items))
    first, second = (ScanItem.from_json(t) for t in out["item"])
    assert (first.status, first.error_stage, first.retryable) == ("error", "extract", retryable)
    assert type(exc).__name__ in first.error and "extract" in first.timings
    assert second.status == "skipped" and second.timings == {}  # untouched


def test_match_searches_group_members_not_only_representatives(small_zoo, zoo_registry, tmp_path):
    protected = small_zoo.select(protected=True)[0]
    copy = small_zoo.train_images(protected.name)[0]
    noise = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    for i, image in enumerate([noise[0], copy, noise[1], noise[2]]):
        save_png(image, tmp_path / sample_name(i))
    item = ScanItem(ref=dict(REF), scan_id="s", config_hash="h", staging_dir=str(tmp_path),
                    n_samples=4, extract_seed=0)  # fmt: skip
    item.groups = [Group(0, 2, 0.5, representative=0, seed=0, members=[0, 1]),
                   Group(1, 2, 0.5, representative=2, seed=2, members=[2, 3])]  # fmt: skip
    MatchStage(str(zoo_registry), settings=MatchSettings(top_k=1, members=True)).run([item])
    assert len(item.matches) == 1
    m = item.matches[0]
    assert (m.candidate_rank, m.sample_index, m.seed, m.support) == (0, 1, 1, 1)
    assert m.artwork_source_uri == str((small_zoo.root / protected.train_images[0]).resolve())
    assert m.artwork_path and Path(m.artwork_path).is_file()
    assert [c.rank for c in item.candidates] == [0]
    # the item survives its trip through JSON (Ray Data's `item` column) with typed records
    again = ScanItem.from_json(item.to_json())
    assert again == item and isinstance(again.matches[0], type(m))
    item.matches, item.candidates = [], []
    MatchStage(str(zoo_registry), settings=MatchSettings(top_k=1, members=False)).run([item])
    assert item.matches == []  # representatives alone miss the copy


@pytest.mark.slow
def test_local_executor_end_to_end_with_broken_checkpoints(small_zoo, zoo_registry, tmp_path):
    heavy = small_zoo.select(method="full", strength="heavy", protected=True)[0].name
    control = small_zoo.select(protected=False)[0].name
    hub = make_hub(tmp_path / "hub", small_zoo, [heavy, control])
    truncated, misfit = add_truncated_lora(hub, small_zoo), add_misfit_lora(hub)
    config = scan_config(hub, zoo_registry, tmp_path / "out", tmp_path / "cache",
                         extract={"n_samples": 64}, authenticate={"steps": 5, "baseline_draws": 4},
                         run={"executor": "local"})  # fmt: skip
    summary = run_scan(config, echo=lambda _: None)  # run.executor local
    rows = {r["repo_id"]: r for r in pq.read_table(tmp_path / "out" / "checkpoints").to_pylist()}
    assert set(rows) == {heavy, control, truncated, misfit}
    assert (rows[truncated]["status"], rows[truncated]["error_stage"]) == ("error", "pull")
    assert (rows[misfit]["status"], rows[misfit]["error_stage"]) == ("error", "extract")
    assert rows[heavy]["status"] == rows[control]["status"] == "ok"
    assert rows[heavy]["n_matches"] >= 1 and rows[control]["n_matches"] == 0
    matches = pq.read_table(tmp_path / "out" / "matches").to_pylist()
    assert {m["repo_id"] for m in matches} == {heavy}
    assert all(m["cgidm_status"] == "ok" and m["evidence_image"] for m in matches)
    assert summary.counts() == {"ok": 2, "error": 2}
    assert not (tmp_path / "out" / "_staging").exists() or not any((tmp_path / "out" / "_staging").iterdir())  # fmt: skip


@pytest.mark.slow
def test_crash_then_rerun_loses_and_duplicates_nothing(small_zoo, zoo_registry, tmp_path):
    hub = make_hub(tmp_path / "hub", small_zoo)
    out = tmp_path / "out"
    config = scan_config(hub, zoo_registry, out, tmp_path / "cache",
                         extract={"n_samples": 8, "steps": 3}, methods={"verifier": None},
                         results={"flush_every": 1}, run={"executor": "local"})  # fmt: skip
    with pytest.raises(Crash):
        run_scan(config, crashing_after(2), echo=lambda _: None)
    assert pq.read_table(out / "checkpoints").num_rows == 2
    # the worst moment: data committed, ledger not yet written; plus a half-written orphan part
    (out / "ledger.parquet").unlink()
    orphan = next((out / "candidates").glob("*/*.parquet"))
    shutil.copy(orphan, orphan.with_name("20990101T000000Z-orphan-p00000.parquet"))
    lines: list[str] = []
    summary = run_scan(config, local_executor, echo=lines.append)
    assert any("removed 1 uncommitted" in line for line in lines)
    assert any("re-marked 2 checkpoints" in line for line in lines)
    assert (
        summary.already_scanned == 2 and len(summary.checkpoints) == len(small_zoo.fine_tunes) - 2
    )
    keys = [(r["repo_id"], r["revision"]) for r in pq.read_table(out / "checkpoints").to_pylist()]
    assert len(keys) == len(set(keys)) == len(small_zoo.fine_tunes)
    ids = pq.read_table(out / "candidates", columns=["candidate_id"])["candidate_id"].to_pylist()
    assert len(ids) == len(set(ids))
