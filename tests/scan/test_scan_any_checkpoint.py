"""A checkpoint we did not make, through the user's own commands: `dmsec finetune --lora` of the
art zoo's base on a few protected images with a prompt of our choosing, `dmsec index add` of
those images and a control nobody trained on (embedder left to the command), then
`dmsec scan --source <folder>` with no `--set`: the scan finds the training images and not the
control, with the art space and preset chosen from the model, the embedder from the registry,
and the prompt read from the fine-tune's card.

The base is the full art zoo's (`art_base`: skipped where it is not trained): the art-small
base's VAE cannot give a 32x32 emoji back above the copy threshold (see `art_base`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmsec.cli import main
from dmsec.images import save_png
from dmsec.zoo.art_config import ART_GUIDANCE

PROMPT = "a sks emoji of a fruit"  # P: not a prompt the zoo trains with
N_TRAIN = 4
# the art zoo's heavy LoRA recipe, 200 steps per image at batch 8 (lr and schedule: the
# command's defaults for a Stable Diffusion base, the same recipe)
STEPS = 200 * N_TRAIN


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _protected_images(root: Path) -> tuple[Path, Path]:
    """(training folder, control folder): twemoji fruit, a sub-category the base never saw."""
    from dmsec.zoo.art_data import load_art_dataset

    data = load_art_dataset()
    fruit = data.tensor("twemoji", data.indices(("food-fruit",))[: N_TRAIN + 1], 32)
    for i in range(N_TRAIN):
        save_png(fruit[i], root / "protected" / f"fruit_{i}.png")
    save_png(fruit[N_TRAIN], root / "control" / f"fruit_{N_TRAIN}.png")
    return root / "protected", root / "control"


@pytest.mark.slow
def test_any_checkpoint_finetuned_by_a_user_is_found_with_settings_from_the_data(
    art_base, tmp_path
):
    train, control = _protected_images(tmp_path)
    hub = tmp_path / "hub"  # a local hub: the base and a fine-tune of it
    shutil.copytree(art_base, hub / "base")
    _cli("finetune", "--images", str(train), "--base", str(hub / "base"),
         "--out", str(hub / "fruit-lora"), "--lora", "--condition", PROMPT,
         "--steps", str(STEPS), "--batch-size", "8")  # fmt: skip
    registry, out = tmp_path / "registry", tmp_path / "out"
    added = _cli("index", "add", str(train), str(control), "--owner", "o", "--registry", str(registry))  # fmt: skip
    assert "new registry: embedder art" in added
    summary_path = tmp_path / "summary.json"
    output = _cli("scan", "--source", str(hub), "--registry", str(registry), "--out", str(out),
                  "--local", "--summary-json", str(summary_path))  # fmt: skip

    # the settings: chosen from the model and the registry, said once, recorded
    said = [line for line in output.splitlines() if "settings from the model" in line]
    assert said == ["extract settings from the model (colour 32x32 images): space art, guidance "
                    "preset art (extract.similarity / extract.defaults override)"]  # fmt: skip
    assert "registry embedder art: the registry's only embedder" in output
    summary = json.loads(summary_path.read_text())
    assert summary["checkpoints"] == {"ok": 1}, summary["errors"]
    (extract,) = summary["extractions"]
    assert extract["repo_id"] == "fruit-lora"
    assert extract["condition"] == PROMPT and extract["condition_from"] == "card"
    assert extract["similarity"] == "art"
    assert (extract["w"], extract["k"]) == ART_GUIDANCE["lora"]
    chosen = {"similarity": "art", "defaults": "art", "why": "colour 32x32 images"}
    assert extract["chosen_from_model"] == chosen
    (scan_folder,) = (out / "scans").iterdir()
    run = json.loads((scan_folder / "run.json").read_text())
    assert run["registry_embedder"]["name"] == "art" and run["registry_embedder"]["chosen"]
    assert run["extract_settings_from_model"] == [{**chosen, "checkpoints": 1}]

    # the findings: every training image the base can draw above the threshold, never the
    # control (which it could draw as well)
    drawable = _drawable(hub / "base", [*sorted(train.glob("*.png")), *control.glob("*.png")])
    assert f"fruit_{N_TRAIN}" in drawable and len(drawable) >= N_TRAIN, drawable
    matches = pq.read_table(out / "matches").to_pylist()
    found = {m["artwork_title"] for m in matches}
    training = {f"fruit_{i}" for i in range(N_TRAIN)}
    assert found <= training, f"matched images nobody trained on: {found - training}"
    assert found >= drawable & training, f"found {sorted(found)}; drawable {sorted(drawable)}"
    assert all(m["method"] == "art" and m["similarity"] >= m["threshold"] for m in matches)


def _drawable(base: Path, images: list[Path]) -> set[str]:
    """Which of `images` the base's VAE gives back (encoded, decoded) at or above the art copy
    threshold: no fine-tune of the base can make a copy of the others."""
    import torch

    from dmsec.images import load_pngs
    from dmsec.metrics import SPACES
    from dmsec.models.loading import load_model

    model = load_model(base)
    x = load_pngs(images, grey=False)
    with torch.no_grad():
        back = model.decode(model.encode_images(x)).float()
    space = SPACES["art"]
    similarity = (space.embed(back) * space.embed(x)).sum(axis=1)
    return {p.stem for p, s in zip(images, similarity, strict=True) if s >= space.threshold()}
