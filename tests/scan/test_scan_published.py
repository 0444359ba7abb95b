"""Scans of the digit zoo's fine-tunes re-published as hubs publish them, without our card:
a Civitai LoRA whose base is a Hugging Face repo, and a diffusers folder whose README names
its base. Both must scan to findings (the digit zoo memorises its protected images)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from scan_helpers import scan_config

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))  # the fake hub and the fixtures
from fake_hub import CivitaiFile, CivitaiModel, CivitaiVersion, FakeHub, HfRepo  # noqa: E402
from published import dreambooth_readme, write_readme  # noqa: E402

from dmsec.scan.runner import run_scan  # noqa: E402

FAST = {"extract": {"n_samples": 64}, "methods": {"verifier": None}, "run": {"executor": "local"}}


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    for name in ("HF_TOKEN", "CIVITAI_API_KEY", "HF_ENDPOINT", "DMSEC_CIVITAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    hub = FakeHub(page_size=2).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("DMSEC_CIVITAI_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield hub
    hub.stop()


def _rows(out: Path) -> dict[str, dict]:
    return {r["repo_id"]: r for r in pq.read_table(out / "checkpoints").to_pylist()}


def test_a_civitai_lora_whose_base_is_a_hugging_face_repo_scans_to_findings(small_zoo, zoo_registry, fake_hub, tmp_path):  # fmt: skip
    entry = small_zoo.select(method="lora", strength="heavy", protected=True)[0]
    weights = (small_zoo.root / entry.path / "pytorch_lora_weights.safetensors").read_bytes()
    base = small_zoo.root / "base"
    files = {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    repo = HfRepo("dmsec/digit-base", files, ["diffusers"], "2025-01-01T00:00:00.000Z")
    version = CivitaiVersion(90, "Other", "2025-02-01T00:00:00.000Z", [CivitaiFile("digits_9a.safetensors", weights)], ["zkq digit"])  # fmt: skip
    fake_hub.hf_repos = [repo]
    fake_hub.civitai_models = [CivitaiModel(9, "Digits 9a", "LORA", ["digits"], [version])]
    out = tmp_path / "out"
    config = scan_config("civitai://", zoo_registry, out, tmp_path / "cache", **FAST,
                         source={"bases": [f"Other=hf://dmsec/digit-base@{repo.sha}"]})  # fmt: skip
    summary = run_scan(config, echo=lambda _: None)
    row = _rows(out)["9"]
    assert (row["status"], row["error"]) == ("ok", None)
    assert row["base_model"] == "Other" and row["n_matches"] >= 1
    assert row["prompt_source"] == "class"  # the digit zoo is class-conditional: its class wins
    assert summary.counts() == {"ok": 1}


def test_a_cardless_diffusers_folder_names_its_base_in_its_readme_and_scans(small_zoo, zoo_registry, tmp_path):  # fmt: skip
    entry = small_zoo.select(method="full", strength="heavy", protected=True)[0]
    hub = tmp_path / "hub"
    shutil.copytree(small_zoo.root / "base", hub / "base")
    folder = hub / "published-full"
    shutil.copytree(small_zoo.root / entry.path, folder)
    (folder / "dmsec_model.json").unlink()
    write_readme(folder, dreambooth_readme("me/published-full", "base", "a zkq digit"))
    out = tmp_path / "out"
    run_scan(scan_config(hub, zoo_registry, out, tmp_path / "cache", **FAST), echo=lambda _: None)
    rows = _rows(out)
    assert set(rows) == {"published-full"}  # the base is listed as one, not scanned
    row = rows["published-full"]
    assert (row["status"], row["base_model"]) == ("ok", "base")
    assert row["n_matches"] >= 1 and row["prompt_source"] == "class"
