"""The art zoo as a scan source: colour defaults, and (where the art zoo is built) end to end."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from scan_helpers import make_hub, scan_config

from dmsec.extract import guidance_preset
from dmsec.scan import load_scan_config
from dmsec.scan.resolve import fit_to_zoo


def _fake_zoo(root, mode: str):
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"image_mode": mode, "entries": []}))
    return str(root)


def test_an_art_zoo_source_takes_the_colour_defaults_unless_set(tmp_path):
    art, digits = _fake_zoo(tmp_path / "art", "RGB"), _fake_zoo(tmp_path / "digits", "L")
    fitted = fit_to_zoo(load_scan_config(), art)
    assert fitted.registry.embedder == "art" and fitted.extract.similarity == "art"
    assert fitted.extract.defaults == guidance_preset("art")
    assert fit_to_zoo(load_scan_config(), digits) == load_scan_config()  # the digit zoo: as is
    assert fit_to_zoo(load_scan_config(), None) == load_scan_config()  # a real hub: as is
    explicit = load_scan_config(None, ["registry.embedder=pdq", "extract.defaults=paper"])
    kept = fit_to_zoo(explicit, art)
    assert kept.registry.embedder == "pdq" and kept.extract.defaults == guidance_preset("paper")
    assert kept.extract.similarity == "art"


def _built_art_zoo():
    """The full art zoo if this machine has built it (`make art-zoo`, ~1 h on 2 CPU cores)."""
    from dmsec.zoo.art_build import art_zoo_dir, resolve_art_config
    from dmsec.zoo.build import MANIFEST, Zoo

    root = art_zoo_dir(resolve_art_config("art"))
    return Zoo(root) if (root / MANIFEST).exists() else None


@pytest.mark.slow
@pytest.mark.skipif(
    _built_art_zoo() is None, reason="the art zoo is not built here: `make art-zoo` (~1 h)"
)
def test_art_zoo_scan_finds_the_protected_sets_not_the_controls_in_both_lora_layouts(tmp_path):
    from dmsec.scan import build_zoo_registry, run_scan

    zoo = _built_art_zoo()
    protected = ["marine-noto-db-heavy", "marine-noto-lora-heavy", "marine-noto-lora-heavy-kohya"]
    controls = ["control-bird-twemoji-db-heavy", "control-bird-twemoji-lora-heavy-kohya"]
    hub = make_hub(tmp_path / "hub", zoo, protected + controls)
    registry = tmp_path / "registry"
    build_zoo_registry(zoo.root, registry)  # every protected set's training images, embedder art
    config = scan_config(
        hub, registry, tmp_path / "out", tmp_path / "cache",
        extract={"n_samples": 32, "similarity": "art", "defaults": "art"},
        authenticate={"steps": 20, "baseline_draws": 4}, run={"executor": "local"},
    ).replace(registry={"embedder": "art"})  # fmt: skip
    summary = run_scan(config, echo=lambda _: None)
    rows = {r["repo_id"]: r for r in pq.read_table(tmp_path / "out" / "checkpoints").to_pylist()}
    assert set(rows) == set(protected + controls)
    assert all(r["status"] == "ok" for r in rows.values()), {k: r["error"] for k, r in rows.items()}
    matches = pq.read_table(tmp_path / "out" / "matches").to_pylist()
    found = {m["repo_id"] for m in matches}
    assert found == set(protected)  # kohya and PEFT layouts alike; no control matches
    assert all(m["artwork_title"].startswith("marine-noto/") for m in matches)
    assert summary.counts() == {"ok": 5}
