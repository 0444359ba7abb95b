"""`dmsec extract`'s settings follow the model: clustering space and guidance preset from the
images it makes (grey or colour, their size), `--space` / `--preset` / `--prompt` override."""

from __future__ import annotations

import copy
import json

from click.testing import CliRunner

from dmsec.cli import main
from dmsec.extract.base import image_settings
from dmsec.models.lora import LoraSpec, add_lora, save_lora


def test_extract_space_follows_the_models_images(tiny_unet, tiny_sd):
    assert image_settings(tiny_unet)[:2] == ("zoo", "zoo")  # one channel, no VAE: grey digits
    space, preset, why = image_settings(tiny_sd)  # a VAE decoding to RGB
    assert space == "art" and "colour" in why
    side = int(why.split()[1].split("x")[0])
    assert preset == ("art" if side <= 64 else "paper")


def _run(args: list[str]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result


def test_extract_space_on_a_colour_lora_is_art_and_the_prompt_is_used(tiny_sd, tmp_path):
    base_dir = tiny_sd.save(tmp_path / "base")
    ft = copy.deepcopy(tiny_sd)
    add_lora(ft.network, LoraSpec(rank=2), init_random=True)
    lora = save_lora(ft.network, tmp_path / "lora", base_model=str(base_dir))
    common = ["extract", str(lora), "--base", str(base_dir), "--n-samples", "4", "--steps", "2", "--n-groups", "2"]  # fmt: skip
    result = _run([*common, "--out", str(tmp_path / "a"), "--prompt", "a sks emoji"])
    assert "settings from the model" in result.output
    config = json.loads((tmp_path / "a" / "extraction.json").read_text())["config"]
    assert config["similarity"] == "art" and config["condition"] == "a sks emoji"
    _run([*common, "--out", str(tmp_path / "z"), "--space", "zoo", "--preset", "paper"])
    config = json.loads((tmp_path / "z" / "extraction.json").read_text())["config"]
    assert config["similarity"] == "zoo"


def test_extract_space_prompt_on_a_class_conditional_model_is_refused(tiny_unet, tmp_path):
    base_dir = tiny_unet.save(tmp_path / "base")
    ft = copy.deepcopy(tiny_unet)
    add_lora(ft.network, LoraSpec(rank=2), init_random=True)
    lora = save_lora(ft.network, tmp_path / "lora", base_model=str(base_dir))
    result = CliRunner().invoke(main, ["extract", str(lora), "--base", str(base_dir), "--out", str(tmp_path / "o"), "--prompt", "a dog"])  # fmt: skip
    assert result.exit_code != 0 and "--prompt needs a text-conditional model" in result.output
