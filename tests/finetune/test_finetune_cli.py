"""`dmsec finetune` in process: zoo-format outputs that load back through `load_model`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from dmsec.cli import main
from dmsec.models.loading import load_model
from dmsec.models.lora import LORA_WEIGHTS_NAME, adapters_disabled, has_lora
from dmsec.models.unet2d import MODEL_CARD


@pytest.fixture()
def base_and_images(tiny_unet, tmp_path, training_images):
    return tiny_unet.save(tmp_path / "base"), training_images(1, 8)


def _finetune(base, images, out, *extra):
    args = ["finetune", "--images", str(images), "--base", str(base), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--steps", "2", "--batch-size", "4", *extra])
    assert result.exit_code == 0, result.output
    return out


def test_bayesian_full_finetune_is_an_ordinary_full_checkpoint(base_and_images, tmp_path):
    base, images = base_and_images
    out = _finetune(base, images, tmp_path / "full", "--bayesian", "--lr", "1e-2")
    assert (out / "model_index.json").exists() and (out / "unet").is_dir()
    card = json.loads((out / MODEL_CARD).read_text())
    assert card["kind"] == "full" and card["base_model"] == "../base"
    assert card["extra"]["finetune"]["train"]["bayes"]["sigma_init"] == 0.01
    tuned, pretrained = load_model(out), load_model(base)
    a, b = tuned.network.state_dict(), pretrained.network.state_dict()
    assert a.keys() == b.keys()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert any(".attentions." in k for k in changed)


def test_bayesian_lora_finetune_loads_on_its_base(base_and_images, tmp_path):
    base, images = base_and_images
    out = _finetune(
        base, images, tmp_path / "lora", "--lora", "--lora-rank", "2", "--bayesian",
        "--preset", "parser",
    )  # fmt: skip
    assert (out / LORA_WEIGHTS_NAME).exists()
    assert json.loads((out / MODEL_CARD).read_text())["kind"] == "lora"
    tuned = load_model(out)  # the card names the base
    assert has_lora(tuned.network)
    x, t = torch.randn(2, *tuned.sample_shape), torch.tensor([10, 500])
    cond = tuned.encode_condition([11, 11])
    with torch.no_grad():
        on = tuned.predict_noise(x, t, cond)
        with adapters_disabled(tuned.network):
            off = tuned.predict_noise(x, t, cond)
    assert not torch.equal(on, off)


def test_an_unrelated_output_folder_is_not_replaced(base_and_images, tmp_path):
    base, images = base_and_images
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    args = ["finetune", "--images", str(images), "--base", str(base)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "precious"), "--steps", "1"])
    assert result.exit_code != 0 and "`out`" in result.output
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
