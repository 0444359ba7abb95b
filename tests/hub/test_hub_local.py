"""The local-folder source: the zoo's layout, generic diffusers/LoRA folders, filters, laziness."""

from __future__ import annotations

import json
import os
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hub_builders import (
    write_diffusers_folder,
    write_lora,
    write_malicious_pickle,
    write_unet_weights,
)

from dmsec.errors import ConfigError
from dmsec.hub import ListFilter, RefNotFoundError, source_from_uri
from dmsec.hub.local import LocalSource

ALL = frozenset({"full", "lora", "base"})


def _by_id(source: LocalSource, flt: ListFilter | None = None) -> dict:
    return {r.repo_id: r for r in source.list(flt or ListFilter(kinds=ALL))}


def test_zoo_layout_kinds_and_base_models(zoo: Path) -> None:
    refs = _by_id(LocalSource(zoo))
    assert set(refs) == {"base", "full-7", "lora-3", "lora-5"}  # manifest.json is not a model
    assert {k: r.kind for k, r in refs.items()} == {
        "base": "base",
        "full-7": "full",
        "lora-3": "lora",
        "lora-5": "lora",
    }
    # "../base" (relative to the checkpoint) and "base" (relative to the root) both resolve to
    # the base checkpoint's repo_id in this same source.
    assert refs["lora-3"].base_model == refs["lora-5"].base_model == "base"
    assert refs["full-7"].base_model == "base" and refs["base"].base_model is None
    assert refs["base"].tags == ("zoo",) and refs["full-7"].extra == {"digit": "7"}
    full_files = {f.path for f in refs["full-7"].files}
    assert "unet/diffusion_pytorch_model.safetensors" in full_files
    assert all(r.source == "local" and r.last_modified is not None for r in refs.values())
    assert refs["lora-3"].url == (zoo / "lora-3").as_uri()


def test_default_listing_skips_base_models_and_filters_apply(zoo: Path) -> None:
    source = LocalSource(zoo)
    assert {r.repo_id for r in source.list()} == {"full-7", "lora-3", "lora-5"}
    loras = source.list(ListFilter(kinds=frozenset({"lora"})))
    assert {r.repo_id for r in loras} == {"lora-3", "lora-5"}
    assert list(source.list(ListFilter(base_models=frozenset({"other"})))) == []
    assert len(list(source.list(ListFilter(limit=2)))) == 2
    # mtime-based `since`: age everything, then touch one checkpoint
    old = (datetime.now(UTC) - timedelta(days=30)).timestamp()
    for p in zoo.rglob("*"):
        os.utime(p, (old, old))
    (zoo / "lora-5" / "dmsec_model.json").touch()
    recent = ListFilter(since=datetime.now(UTC) - timedelta(days=1))
    assert [r.repo_id for r in source.list(recent)] == ["lora-5"]


def test_listing_is_lazy(zoo: Path) -> None:
    refs = LocalSource(zoo).list()
    assert isinstance(refs, types.GeneratorType)
    assert next(refs).repo_id == "full-7"


def test_generic_folders_without_markers(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_diffusers_folder(root / "sd-finetune")  # model_index.json -> full
    (root / "unet-only" / "unet").mkdir(parents=True)  # unet/config.json -> full
    (root / "unet-only" / "unet" / "config.json").write_text("{}")
    write_unet_weights(root / "unet-only" / "unet" / "diffusion_pytorch_model.safetensors")
    write_lora(root / "loras" / "pets.safetensors", base_model="runwayml/sd-v1-5")
    write_lora(root / "loras" / "anon.safetensors", base_model=None)
    write_unet_weights(root / "loras" / "not-a-lora.safetensors")  # no lora keys: a skipped ref
    (root / "peft").mkdir()
    (root / "peft" / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "stabilityai/sdxl"})
    )
    write_lora(root / "peft" / "adapter_model.safetensors", base_model=None)
    (root / ".cache").mkdir()
    write_lora(root / ".cache" / "hidden.safetensors")
    (root / "notes.txt").write_text("hello")
    refs = _by_id(LocalSource(root))
    assert {k: (r.kind, r.base_model) for k, r in refs.items()} == {
        "sd-finetune": ("full", None),
        "unet-only": ("full", None),
        "loras/pets.safetensors": ("lora", "runwayml/sd-v1-5"),
        "loras/anon.safetensors": ("lora", None),
        "peft": ("lora", "stabilityai/sdxl"),
        "loras/not-a-lora.safetensors": ("lora", None),  # kind from its name
    }
    assert [f.path for f in refs["loras/pets.safetensors"].files] == ["pets.safetensors"]
    skipped = {k for k, r in refs.items() if r.skip_reason}
    assert skipped == {"loras/not-a-lora.safetensors"}
    assert refs["loras/not-a-lora.safetensors"].skip_reason.startswith("not diffusion weights")
    # the headers' tensors name no family here; the base models' names do
    assert refs["peft"].family == "sdxl" and refs["loras/pets.safetensors"].family == "sd1"
    assert refs["sd-finetune"].family is None and refs["loras/anon.safetensors"].family is None


def test_root_that_is_itself_a_checkpoint(tmp_path: Path) -> None:
    folder = write_diffusers_folder(tmp_path / "one", {"kind": "full", "base_model": "sd15"})
    (refs,) = LocalSource(folder).list()
    assert refs.repo_id == "." and refs.base_model == "sd15"
    assert LocalSource(folder).get(".") == refs


def test_pickle_checkpoints_are_listed_so_pull_can_refuse_them(tmp_path: Path) -> None:
    write_malicious_pickle(tmp_path / "m" / "lora_model.ckpt", tmp_path / "canary")
    (ref,) = LocalSource(tmp_path / "m").list()
    assert ref.kind == "lora" and ref.files[0].path == "lora_model.ckpt"
    assert not (tmp_path / "canary").exists()  # listing never unpickles


def test_invalid_marker_falls_back_to_generic_rules(tmp_path: Path) -> None:
    folder = write_diffusers_folder(tmp_path / "z" / "m")
    (folder / "dmsec_model.json").write_text('{"kind": "banana"}')
    (ref,) = LocalSource(tmp_path / "z").list()
    assert ref.kind == "full"


def test_get_and_revision_changes_with_content(zoo: Path) -> None:
    source = LocalSource(zoo)
    ref = source.get("lora-3")
    assert ref == _by_id(source)["lora-3"]
    assert source.get("lora-3", ref.revision) == ref
    write_lora(zoo / "lora-3" / "pytorch_lora_weights.safetensors", "../base", seed=99)
    changed = source.get("lora-3")
    assert changed.revision != ref.revision
    with pytest.raises(RefNotFoundError, match="now at revision"):
        source.get("lora-3", ref.revision)
    for missing in ["nope", "../zoo", "manifest.json"]:
        with pytest.raises((RefNotFoundError, ValueError)):
            source.get(missing)


def test_uri_forms(zoo: Path) -> None:
    assert source_from_uri(str(zoo)).uri == zoo.resolve().as_uri()
    assert isinstance(source_from_uri(zoo.as_uri()), LocalSource)
    with pytest.raises(ConfigError, match="`root`"):
        LocalSource(zoo / "missing")
    with pytest.raises(ConfigError, match="local path"):
        source_from_uri("file://remote-host/x")
