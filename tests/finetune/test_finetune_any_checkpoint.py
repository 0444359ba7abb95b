"""`dmsec finetune` on a Stable Diffusion base means what the art zoo means: the prompt in the
card, LoRA targets, the lr schedule and the text encoder (random-init tiny models, mechanics)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from click.testing import CliRunner

from dmsec.cli import main
from dmsec.finetune.recipes import ART_ZOO_DEFAULTS, DIGIT_ZOO_DEFAULTS
from dmsec.finetune.vanilla import FewShotTrainer
from dmsec.images import save_png
from dmsec.models.loading import load_model, read_model_info
from dmsec.models.lora import LORA_TARGET_PRESETS, LoraSpec, add_lora, tuner_layers
from dmsec.models.pair import card_condition
from dmsec.models.unet2d import MODEL_CARD
from dmsec.zoo.art_build import finetune_art
from dmsec.zoo.art_config import ART, ArtSet, Recipe
from dmsec.zoo.config import ZooConfig

PROMPT = "a drawing of zqx tower"


@pytest.fixture()
def sd_base(tiny_sd, tmp_path, training_images):
    """The tiny SD base saved as a diffusers folder, and three 32x32 colour training images."""
    return tiny_sd.save(tmp_path / "base"), training_images(3, 32)


def _finetune(base, images, out, *extra, steps=2):
    args = ["finetune", "--images", str(images), "--base", str(base), "--out", str(out)]
    result = CliRunner().invoke(
        main, [*args, "--steps", str(steps), "--batch-size", "2", *extra], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return out, result


def _adapted(network) -> set[str]:
    names = {id(m): n for n, m in network.named_modules()}
    return {names[id(layer)] for layer in tuner_layers(network)}


@pytest.mark.parametrize("lora", [True, False])
def test_any_checkpoint_finetune_card_prompt(sd_base, tmp_path, lora):
    base, images = sd_base
    extra = ["--lora", "--lora-rank", "2"] if lora else []
    out, _ = _finetune(base, images, tmp_path / "out", "--condition", PROMPT, *extra)
    card = json.loads((out / MODEL_CARD).read_text())
    assert card["instance_prompt"] == PROMPT and card["instance_class"] is None
    assert card["kind"] == ("lora" if lora else "full")
    assert read_model_info(out).instance_prompt == PROMPT
    tuned = load_model(out)  # the card names the base; the condition comes back with it
    assert card_condition(tuned) == PROMPT


def test_any_checkpoint_finetune_card_keeps_the_base_prompt_by_default(sd_base, tmp_path):
    base, images = sd_base
    out, _ = _finetune(base, images, tmp_path / "out", "--lora", "--lora-rank", "2")
    assert read_model_info(out).instance_prompt == read_model_info(base).instance_prompt
    assert read_model_info(out).instance_prompt  # the tiny base's card names one


def test_any_checkpoint_lora_layout_attn_is_the_art_zoo_recipe(sd_base, tiny_sd, tmp_path):
    base, images = sd_base
    # the default for a Stable Diffusion base, and the explicit preset, adapt the same modules
    default, result = _finetune(base, images, tmp_path / "default", "--lora", "--lora-rank", "2")
    said = [line for line in result.stderr.splitlines() if line.startswith("settings: ")]
    assert len(said) == 1 and "LoRA targets attn" in said[0] and "art zoo" in said[0]
    attn, _ = _finetune(base, images, tmp_path / "attn", "--lora", "--lora-rank", "2",
                        "--lora-targets", "attn")  # fmt: skip
    # the zoo's own fine-tune code, one step of its LoRA recipe on the same base
    recipe = Recipe("lora", lr=1e-3, light_steps=1, heavy_steps=1, batch_size=2, lora_rank=2)
    s = ArtSet("fruit-twemoji", "subject", "twemoji", "tuning", subcategory="food-fruit")
    zoo_handle, _, _ = finetune_art(tiny_sd, torch.rand(2, 3, 32, 32), s, recipe, "light", 0)
    zoo_modules = _adapted(zoo_handle.network)
    assert zoo_modules  # the tiny SD has transformer blocks
    assert _adapted(load_model(attn).network) == zoo_modules
    assert _adapted(load_model(default).network) == zoo_modules
    assert any(n.endswith("ff.net.2") for n in zoo_modules)
    assert not any(n.endswith(("conv1", "conv2", "time_emb_proj")) for n in zoo_modules)


def test_any_checkpoint_lora_layout_all_adds_resnets(sd_base, tmp_path):
    base, images = sd_base
    out, _ = _finetune(base, images, tmp_path / "all", "--lora", "--lora-rank", "2",
                       "--lora-targets", "all")  # fmt: skip
    modules = _adapted(load_model(out).network)
    attn = add_lora(copy.deepcopy(load_model(base).network),
                    LoraSpec(rank=2, target_modules=LORA_TARGET_PRESETS["attn"]))  # fmt: skip
    extra = modules - _adapted(attn)
    assert _adapted(attn) < modules
    assert {n.rsplit(".", 1)[-1] for n in extra} == {"conv1", "conv2", "time_emb_proj"}


def test_any_checkpoint_lora_layout_targets_need_lora(sd_base, tmp_path):
    base, images = sd_base
    args = ["finetune", "--images", str(images), "--base", str(base), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(main, [*args, "--lora-targets", "all", "--steps", "1"])
    assert result.exit_code != 0 and "--lora-targets" in result.output and "--lora" in result.output
    assert not (tmp_path / "x").exists()


def test_any_checkpoint_lora_layout_all_is_the_digit_zoo_recipe(tiny_unet):
    # on a class-conditional UNet, "all" adapts exactly what the digit zoo's LoraSpec() does
    digit_zoo = add_lora(copy.deepcopy(tiny_unet.network), LoraSpec(rank=2))
    preset = add_lora(copy.deepcopy(tiny_unet.network),
                      LoraSpec(rank=2, target_modules=LORA_TARGET_PRESETS["all"]))  # fmt: skip
    assert _adapted(digit_zoo) and _adapted(preset) == _adapted(digit_zoo)


def _record_lrs(monkeypatch) -> list[float]:
    lrs: list[float] = []
    original = FewShotTrainer.train_step

    def step(self):
        loss = original(self)
        lrs.append(self.optimiser.param_groups[0]["lr"])
        return loss

    monkeypatch.setattr(FewShotTrainer, "train_step", step)
    return lrs


def test_any_checkpoint_finetune_cosine_follows_the_art_zoo(sd_base, tiny_sd, tmp_path, monkeypatch):  # fmt: skip
    base, images = sd_base
    lrs = _record_lrs(monkeypatch)
    _finetune(base, images, tmp_path / "cos", "--lora", "--lora-rank", "2", "--lr", "1e-3",
              "--lr-schedule", "cosine", steps=4)  # fmt: skip
    command = list(lrs)
    lrs.clear()
    recipe = Recipe("lora", lr=1e-3, light_steps=4, heavy_steps=4, batch_size=2, lora_rank=2)
    s = ArtSet("fruit-twemoji", "subject", "twemoji", "tuning", subcategory="food-fruit")
    finetune_art(tiny_sd, torch.rand(1, 3, 32, 32), s, recipe, "light", 0)
    assert len(command) == 4 and command == pytest.approx(lrs)
    assert command[0] == pytest.approx(1e-3) and command[-1] < command[0] / 2  # decays
    lrs.clear()
    _finetune(base, images, tmp_path / "const", "--lora", "--lora-rank", "2", "--lr", "1e-3",
              "--lr-schedule", "constant", steps=4)  # fmt: skip
    assert lrs == [1e-3] * 4


def test_any_checkpoint_finetune_text_encoder(sd_base, tmp_path):
    base, images = sd_base
    before = load_model(base).text_encoder.state_dict()
    frozen, _ = _finetune(base, images, tmp_path / "frozen", "--lr", "1e-2")
    trained, _ = _finetune(base, images, tmp_path / "trained", "--lr", "1e-2",
                           "--train-text-encoder")  # fmt: skip
    same = load_model(frozen).text_encoder.state_dict()
    changed = load_model(trained).text_encoder.state_dict()
    assert all(torch.equal(before[k], same[k]) for k in before)
    assert any(not torch.equal(before[k], changed[k]) for k in before)
    record = json.loads((trained / MODEL_CARD).read_text())["extra"]["finetune"]["train"]
    assert record["train_text_encoder"] is True


def test_any_checkpoint_finetune_text_encoder_refused_with_lora(sd_base, tmp_path):
    base, images = sd_base
    args = ["finetune", "--images", str(images), "--base", str(base), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(main, [*args, "--lora", "--train-text-encoder", "--steps", "1"])
    assert result.exit_code != 0 and "train_text_encoder" in result.output
    assert not (tmp_path / "x").exists()


def test_any_checkpoint_finetune_text_encoder_refused_without_one(tiny_unet, tmp_path):
    base = tiny_unet.save(tmp_path / "base")
    images = tmp_path / "images"
    save_png(torch.rand(1, 8, 8), images / "train_0.png")
    args = ["finetune", "--images", str(images), "--base", str(base), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(main, [*args, "--train-text-encoder", "--steps", "1"])
    assert result.exit_code != 0 and "needs a text-conditional model" in result.output


def test_any_checkpoint_finetune_defaults_are_the_zoo_recipes():
    assert ART_ZOO_DEFAULTS.lora_lr == ART.recipe("lora").lr
    assert ART_ZOO_DEFAULTS.full_lr == ART.recipe("db").lr
    assert DIGIT_ZOO_DEFAULTS.lora_lr == ZooConfig().lora_lr
    assert DIGIT_ZOO_DEFAULTS.full_lr == ZooConfig().full_lr
