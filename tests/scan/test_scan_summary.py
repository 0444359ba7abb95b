"""The printed summary agrees with the checkpoints row, on a PDQ registry (lower = closer)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "match"))
from artwork_factory import COPY_TRANSFORMS, draw_artwork  # noqa: E402

from dmsec.match import ProtectedArtworkIndex  # noqa: E402
from dmsec.scan.config import MatchSettings  # noqa: E402
from dmsec.scan.hits import Group  # noqa: E402
from dmsec.scan.records import ScanItem  # noqa: E402
from dmsec.scan.stages import MatchStage  # noqa: E402
from dmsec.scan.stages.extract import sample_name  # noqa: E402
from dmsec.scan.summary import ScanSummary  # noqa: E402

REF = {"source": "local", "repo_id": "a/b", "revision": "r1", "kind": "lora", "base_model": "base"}


def test_best_similarity_on_a_pdq_registry_is_the_smallest_distance(tmp_path):
    art = [draw_artwork(0), draw_artwork(1)]
    paths = []
    for i, im in enumerate(art):
        paths.append(str(tmp_path / f"art{i}.png"))
        im.save(paths[-1])
    registry = ProtectedArtworkIndex.create(tmp_path / "registry", embedders=["pdq"])
    registry.add(paths, owner="o", title=["zero", "one"], source_uri=paths)
    staging = tmp_path / "staging"
    staging.mkdir()
    art[0].save(staging / sample_name(0))  # an exact copy of artwork 0: distance 0
    COPY_TRANSFORMS["jpeg_q70"](art[0]).save(staging / sample_name(1))
    COPY_TRANSFORMS["crop_2px_per_side"](art[1]).save(staging / sample_name(2))
    item = ScanItem(ref=dict(REF), scan_id="s", config_hash="h", staging_dir=str(staging),
                    n_samples=3, extract_seed=0, extract_method="finextract")  # fmt: skip
    item.groups = [Group(0, 2, 2 / 3, representative=1, seed=1, members=[0, 1]),
                   Group(1, 1, 1 / 3, representative=2, seed=2, members=[2])]  # fmt: skip
    MatchStage(str(tmp_path / "registry"), embedder="pdq", settings=MatchSettings()).run([item])
    assert item.status == "pending", item.error
    distances = {m.artwork_title: m.similarity for m in item.matches}
    assert set(distances) == {"zero", "one"} and {m.metric for m in item.matches} == {"hamming"}
    assert distances["zero"] == 0 < distances["one"] <= 31  # the closest match is the exact copy
    item.status = "ok"
    summary = ScanSummary(scan_id="s", out=str(tmp_path))
    summary.add(item)
    assert item.to_row()["best_similarity"] == 0.0  # the row: the lowest distance
    assert summary.checkpoints[0]["best_similarity"] == 0.0  # the summary: the same, not the worst
    line = next(line for line in summary.table().splitlines() if line.startswith("a/b"))
    assert "0.0000" in line and f"{distances['one']:.4f}" not in line


def test_extract_settings_chosen_from_models_are_said_once_and_in_the_summary_json(tmp_path):
    import json

    from dmsec.scan.runner import note_chosen

    chosen = {"similarity": "art", "defaults": "art", "why": "colour 32x32 images"}
    ran = {"similarity": "art", "w": 3.0, "k": 0.0, "condition": "a sks emoji", "condition_from": "card"}  # fmt: skip
    items = [ScanItem(ref={**REF, "repo_id": f"a/{i}"}, scan_id="s", config_hash="h", status="ok",
                      extract_settings={**ran, "chosen_from_model": chosen}) for i in range(3)]  # fmt: skip
    items.append(ScanItem(ref={**REF, "repo_id": "a/pulled-not"}, scan_id="s", config_hash="h"))
    lines: list[str] = []
    tally: dict[str, dict] = {}
    summary = ScanSummary(scan_id="s", out=str(tmp_path))
    for item in items:
        note_chosen(item, tally, lines.append)
        summary.add(item)
    assert lines == ["extract settings from the model (colour 32x32 images): space art, guidance "
                     "preset art (extract.similarity / extract.defaults override)"]  # fmt: skip
    assert list(tally.values()) == [{**chosen, "checkpoints": 3}]
    extractions = json.loads(summary.to_json())["extractions"]
    assert [e["repo_id"] for e in extractions] == ["a/0", "a/1", "a/2"]  # none for the 4th
    assert extractions[0] == {"repo_id": "a/0", **ran, "chosen_from_model": chosen}
