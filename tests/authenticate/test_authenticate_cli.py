"""`dmsec authenticate` end to end on a small-zoo checkpoint (3 PGD steps: mechanics only)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dmsec.cli import main


def test_cli_prints_a_score_per_image_and_writes_evidence(small_zoo, tmp_path):
    name = "full-7a-heavy"
    entry = small_zoo.entry(name)
    images = [str(small_zoo.root / p) for p in (entry.train_images[0], entry.holdout_images[0])]
    args = ["authenticate", str(small_zoo.path(name)), *images, "--base", str(small_zoo.path("base"))]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--steps", "3", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip().startswith("cgi ")]
    assert len(lines) == 2 and "gap" in lines[0] and images[1] in lines[1]
    meta = json.loads((tmp_path / "ev" / "evidence.json").read_text())
    assert [row["source"] for row in meta["images"]] == images
    assert all((tmp_path / "ev" / row["evidence_png"]).exists() for row in meta["images"])
    assert meta["config"]["steps"] == 3


def test_cli_names_a_missing_base(small_zoo, tmp_path):
    entry = small_zoo.entry("lora-9a-heavy")
    lora_file = small_zoo.path("lora-9a-heavy") / "pytorch_lora_weights.safetensors"
    image = str(small_zoo.root / entry.train_images[0])
    result = CliRunner().invoke(main, ["authenticate", str(lora_file), image, "--steps", "1"])
    assert result.exit_code != 0 and "--base is required" in result.output
