"""Tokenizers are built as a class we name, from files we accept, never chosen by the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmsec.errors import CheckpointError
from dmsec.models.loading import load_model
from dmsec.models.stable_diffusion import load_tokenizer

PROMPTS = ["a photo of sks dog", "painting style"]


def _ids(tokenizer, prompts=PROMPTS):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length).input_ids


def test_a_saved_folder_loads_with_the_same_tokenizer(tiny_sd, tmp_path: Path):
    tiny_sd.save(tmp_path / "sd")
    loaded = load_model(tmp_path / "sd")
    assert _ids(loaded.tokenizer) == _ids(tiny_sd.tokenizer)
    assert loaded.tokenizer.model_max_length == tiny_sd.tokenizer.model_max_length


def test_clip_vocab_and_merges_load_as_clip(tmp_path: Path):
    from dmsec.zoo.art_model import build_tokenizer

    clip = build_tokenizer(PROMPTS, 16)
    clip.save_pretrained(str(tmp_path / "fast"))
    assert type(load_tokenizer(tmp_path / "fast")).__name__ == "CLIPTokenizer"
    assert _ids(load_tokenizer(tmp_path / "fast")) == _ids(clip)
    model = json.loads((tmp_path / "fast" / "tokenizer.json").read_text())["model"]
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (slow / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (slow / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    assert _ids(load_tokenizer(slow)) == _ids(clip)


def test_a_class_named_by_the_folder_is_refused(tiny_sd, tmp_path: Path):
    tiny_sd.tokenizer.save_pretrained(str(tmp_path / "tok"))
    config = tmp_path / "tok" / "tokenizer_config.json"
    data = json.loads(config.read_text()) | {"tokenizer_class": "EvilTokenizer", "auto_map": {}}
    config.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="`tokenizer_class` 'EvilTokenizer' is not a CLIP"):
        load_tokenizer(tmp_path / "tok")


def test_a_folder_without_tokenizer_files_is_an_error(tmp_path: Path):
    (tmp_path / "tok").mkdir()
    with pytest.raises(CheckpointError, match="no tokenizer.json"):
        load_tokenizer(tmp_path / "tok")
