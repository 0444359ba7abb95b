"""Checkpoints as hubs publish them, without our card: README front matter, kohya metadata,
Civitai trainedWords, the Hub's cardData, and base folders that are not fine-tunes."""

from __future__ import annotations

import json
from pathlib import Path

from fake_hub import CivitaiFile, CivitaiModel, CivitaiVersion, FakeHub, HfRepo
from hub_builders import write_diffusers_folder, write_lora
from published import dreambooth_readme, kohya_metadata, lora_readme, write_readme
from safetensors.torch import load_file, save_file

from dmsec.hub import ListFilter, Puller, PullPolicy
from dmsec.hub.civitai import CivitaiSource
from dmsec.hub.huggingface import HuggingFaceSource
from dmsec.hub.local import LocalSource
from dmsec.models.prompts import HUB_INSTANCE_PROMPT, HUB_TRAINED_WORDS, HUB_WIDGET_PROMPTS

ALL = frozenset({"full", "lora", "base"})
PROMPT = "a sks emoji in the style of twemoji"


def _hub(root: Path) -> Path:
    """A local hub: a card-less base, a DreamBooth folder and a diffusers-layout LoRA naming it
    in their README front matter, a kohya file, and a folder nobody names as a base."""
    write_diffusers_folder(root / "sd-art-base", seed=0)
    write_readme(write_diffusers_folder(root / "db", seed=1), dreambooth_readme("me/db", "sd-art-base", PROMPT, [f"{PROMPT} on a hill"]))  # fmt: skip
    lora = root / "lora"
    write_lora(lora / "pytorch_lora_weights.safetensors", base_model=None, seed=2)
    write_readme(lora, lora_readme("me/lora", "sd-art-base", PROMPT))
    kohya = root / "kohya" / "twemoji_fruit.safetensors"
    tensors = load_file(str(write_lora(root / "tmp.safetensors", base_model=None, seed=3)))
    (root / "tmp.safetensors").unlink()
    kohya.parent.mkdir()
    meta = kohya_metadata("twemoji_fruit", "sd-art-base", "10_sks emoji", [PROMPT] * 5)
    save_file(tensors, str(kohya), metadata=meta)
    write_diffusers_folder(root / "lonely", seed=4)
    return root


def test_readme_front_matter_is_hub_metadata_and_a_named_base_is_listed_as_a_base(tmp_path):
    refs = {r.repo_id: r for r in LocalSource(_hub(tmp_path / "hub")).list(ListFilter(kinds=ALL))}
    assert {k: r.kind for k, r in refs.items()} == {
        "sd-art-base": "base",  # no fine-tune evidence, and the others name it
        "db": "full",
        "lora": "lora",  # README + adapter weights: one checkpoint, like an HF LoRA repo
        "kohya/twemoji_fruit.safetensors": "lora",
        "lonely": "full",  # nobody names it as a base: scanned as a model of its own
    }
    db, lora = refs["db"], refs["lora"]
    assert db.base_model == lora.base_model == refs["kohya/twemoji_fruit.safetensors"].base_model == "sd-art-base"  # fmt: skip
    assert db.license == "creativeml-openrail-m" and "dreambooth" in db.tags
    assert db.extra[HUB_INSTANCE_PROMPT] == PROMPT
    assert json.loads(db.extra[HUB_WIDGET_PROMPTS]) == [f"{PROMPT} on a hill"]
    assert {f.path for f in lora.files} == {"README.md", "pytorch_lora_weights.safetensors"}
    # the default filter (full and LoRA) leaves the base out of the scan
    listed = {r.repo_id for r in LocalSource(tmp_path / "hub").list()}
    assert "sd-art-base" not in listed and "db" in listed


def test_the_pull_keeps_the_readme_beside_the_weights_and_skips_an_oversized_one(tmp_path):
    hub = _hub(tmp_path / "hub")
    source = LocalSource(hub)
    result = Puller(tmp_path / "cache", PullPolicy()).pull(source, source.get("lora"))
    assert result.ok and (result.path / "README.md").is_file()
    (hub / "lora" / "README.md").write_text(lora_readme("me/lora", "sd-art-base", PROMPT) + "x" * 2048)  # fmt: skip
    small = PullPolicy(max_config_bytes=1024)
    selection = small.select(source.get("lora"))
    assert selection.refusal is None and "README.md" not in {f.path for f in selection.files}


def test_hub_card_data_and_civitai_trained_words_reach_the_ref(fake_hub: FakeHub, tmp_path, monkeypatch):  # fmt: skip
    card = {"base_model": "me/sd-art-base", "instance_prompt": "a zkq cat\x1b[2J",
            "widget": [{"text": "a zkq cat on a sofa"}], "license": "openrail"}  # fmt: skip
    lora = write_lora(tmp_path / "l.safetensors", base_model=None).read_bytes()
    fake_hub.hf_repos = [HfRepo("me/cat-lora", {"pytorch_lora_weights.safetensors": lora}, ["lora", "diffusers"], "2025-01-01T00:00:00.000Z", card)]  # fmt: skip
    ref = HuggingFaceSource(endpoint=fake_hub.url).get("me/cat-lora")
    assert ref.base_model == "me/sd-art-base"
    assert ref.extra[HUB_INSTANCE_PROMPT] == "a zkq cat[2J"  # the escape character is dropped
    assert json.loads(ref.extra[HUB_WIDGET_PROMPTS]) == ["a zkq cat on a sofa"]
    words = ["zkq cat", "<b>x</b>" * 100, 7]
    version = CivitaiVersion(31, "SD 1.5", "2025-01-01T00:00:00.000Z", [CivitaiFile("cat.safetensors", lora)], words)  # fmt: skip
    fake_hub.civitai_models = [CivitaiModel(3, "Cat", "LORA", ["cat"], [version])]
    (ref,) = CivitaiSource(endpoint=fake_hub.url).list()
    trained = json.loads(ref.extra[HUB_TRAINED_WORDS])
    assert trained[0] == "zkq cat" and len(trained) == 2 and len(trained[1]) <= 100


def test_a_civitai_download_keeps_its_base_and_trained_words_from_the_info_file(tmp_path):
    """Civitai downloaders save the model version's JSON as `<name>.civitai.info` beside the file."""
    hub = tmp_path / "hub"
    write_lora(hub / "loras" / "cat_v2.safetensors", base_model=None)
    info = {"id": 11, "baseModel": "SD 1.5", "trainedWords": ["zkq cat", "\x00"], "files": []}
    (hub / "loras" / "cat_v2.civitai.info").write_text(json.dumps(info))
    (ref,) = LocalSource(hub / "loras").list()
    assert (ref.repo_id, ref.kind, ref.base_model, ref.family) == ("cat_v2.safetensors", "lora", "SD 1.5", "sd1")  # fmt: skip
    assert json.loads(ref.extra[HUB_TRAINED_WORDS]) == ["zkq cat"]
