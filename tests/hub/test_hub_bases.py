"""The base registry: entries, lookup order, and bases pulled from another source than the scan's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fake_hub import FakeHub, HfRepo
from hub_builders import write_diffusers_folder, write_lora

from dmsec.errors import ConfigError
from dmsec.hub.bases import BaseLocation, base_locations, parse_bases, parse_location
from dmsec.hub.local import LocalSource
from dmsec.scan.records import ScanItem
from dmsec.scan.stages.pull import PullStage


def test_locations_and_lookup_order():
    assert parse_location("hf://org/base@abc") == BaseLocation("hf://", "org/base", "abc")
    assert parse_location("s3://b/bases/sd15/") == BaseLocation("s3://b", "b/bases/sd15")
    assert parse_location("/srv/bases/sd15.safetensors") == BaseLocation("/srv/bases", "sd15.safetensors")  # fmt: skip
    assert parse_location("file:///srv/bases/sd15") == BaseLocation("/srv/bases", "sd15")
    assert parse_location("base") == BaseLocation(None, "base")
    for bad in ("hf://org/base", "hf://base@1", "s3://bucket", "/", "http://x/y", "ftp://a"):
        with pytest.raises(ConfigError):
            parse_location(bad)
    with pytest.raises(ConfigError, match="name=location; got 'sd1'"):
        parse_bases(["sd1"])
    table = parse_bases(["SD 1.5=hf://org/sd15@r1", " sdxl = /srv/xl ", "*=base"])
    assert base_locations("sd 1.5", "sd1", table) == [BaseLocation("hf://", "org/sd15", "r1")]
    assert base_locations("Pony", "sdxl", table) == [BaseLocation("/srv", "xl")]  # by family
    # unmapped: the hub's word in the scan's source first, then the `*` entry
    assert base_locations("me/base", None, table) == [BaseLocation(None, "me/base"), BaseLocation(None, "base")]  # fmt: skip
    assert base_locations(None, "unknown", table) == [BaseLocation(None, "base")]
    assert base_locations(None, None, {}) == []


def test_a_civitai_style_lora_gets_its_base_from_the_hub_or_a_local_folder(fake_hub: FakeHub, tmp_path, monkeypatch):  # fmt: skip
    """A LoRA in a local folder names its base as Civitai does ("Other"); the registry maps it
    to a pinned Hugging Face repo, pulled once for two LoRAs, or to a folder elsewhere."""
    base = write_diffusers_folder(tmp_path / "base-src", {"kind": "base"})
    files = {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    repo = HfRepo("dmsec/digit-base", files, ["diffusers"], "2025-01-01T00:00:00.000Z")
    fake_hub.hf_repos = [repo]
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    hub = tmp_path / "hub"
    for seed in (1, 2):
        write_lora(hub / f"l{seed}.safetensors", base_model=None, seed=seed)
    refs = [dataclasses.replace(r, base_model="Other") for r in LocalSource(hub).list()]
    assert len(refs) == 2
    for bases, where in ((["Other=hf://dmsec/digit-base@" + repo.sha], "hf"), ([f"*={base}"], "local")):  # fmt: skip
        stage = PullStage(str(hub), cache_dir=str(tmp_path / f"cache-{where}"), bases=bases)
        items = stage.run([ScanItem(ref=r.to_dict(), scan_id="s", config_hash="h") for r in refs])
        assert [it.status for it in items] == ["pending", "pending"], [it.error for it in items]
        assert items[0].base_key == items[1].base_key and items[0].base_key.startswith(f"{where}|")
        assert (Path(items[0].base_path) / "unet" / "config.json").is_file()
    infos = [r for r in fake_hub.requests_to("GET", "/api/models/dmsec/digit-base") if "blobs" in r.query]  # fmt: skip
    assert len(infos) == 1  # one model_info for the two LoRAs: pulled once per worker
    stage = PullStage(str(hub), cache_dir=str(tmp_path / "cache"), bases=["Other=hf://dmsec/digit-base@" + "0" * 40])  # fmt: skip
    (item,) = stage.run([ScanItem(ref=refs[0].to_dict(), scan_id="s", config_hash="h")])
    assert (item.status, item.error_stage) == ("error", "pull")
    assert "map it in `source.bases`" in (item.error or "")
