"""`dmsec protect` end to end on a saved tiny UNet (3 PGD steps: mechanics only)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from click.testing import CliRunner

from dmsec.cli import main


def _args(image_folder, out, model_dir, *extra):
    return ["protect", str(image_folder), "--out", str(out), "--base", str(model_dir), "--steps", "3", *extra]  # fmt: skip


def test_cli_protects_a_folder_and_reports_errors(image_folder, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, _args(image_folder, out, tiny_model_dir, "--eps", "8/255"))
    assert result.exit_code == 0, result.output
    assert "protected 5 of 6 images (1 errors)" in result.output
    assert "error corrupt.png: cannot decode" in result.output
    # no terminal here: plain progress lines, no bar's carriage returns
    assert "\r" not in result.output
    assert any(line.startswith("protect: 6/6 img") for line in result.stderr.splitlines())
    manifest = pq.read_table(out / "manifest.parquet")
    assert (
        manifest.num_rows == 6 and max(manifest["linf"].drop_null().to_pylist()) <= 8 / 255 + 1e-6
    )
    assert json.loads((out / "protect.json").read_text())["config"]["advdm"]["eps"] == 8 / 255


def test_yaml_config_is_read_and_explicit_options_override_it(
    image_folder, tmp_path, tiny_model_dir
):
    config = tmp_path / "job.yaml"
    config.write_text("batch_size: 2\nadvdm:\n  eps: 0.02\n  steps: 2\n  seed: 7\n")
    out = tmp_path / "out"
    args = _args(image_folder, out, tiny_model_dir, "--config", str(config), "--eps", "4/255")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "protect.json").read_text())["config"]
    assert recorded["advdm"]["eps"] == 4 / 255 and recorded["advdm"]["steps"] == 3  # given here
    assert recorded["advdm"]["seed"] == 7 and recorded["batch_size"] == 2  # from the file


def test_cli_errors_name_the_field(image_folder, tmp_path, tiny_model_dir):
    bad_eps = CliRunner().invoke(
        main, _args(image_folder, tmp_path / "o", tiny_model_dir, "--eps", "2")
    )
    assert bad_eps.exit_code != 0 and "`advdm.eps` must be in (0, 1]; got 2" in bad_eps.output
    not_a_budget = CliRunner().invoke(
        main, _args(image_folder, tmp_path / "o", tiny_model_dir, "--eps", "x/2")
    )
    assert not_a_budget.exit_code != 0 and "fraction like 8/255" in not_a_budget.output
    nested = CliRunner().invoke(
        main, _args(image_folder, image_folder / "protected", tiny_model_dir)
    )
    assert nested.exit_code != 0 and "`out_dir` must not be `in_dir`" in nested.output
    config = tmp_path / "job.yaml"
    config.write_text("advdm:\n  epsilon: 0.1\n")
    unknown = CliRunner().invoke(
        main, _args(image_folder, tmp_path / "o", tiny_model_dir, "--config", str(config))
    )
    assert unknown.exit_code != 0 and "unknown key `advdm.epsilon`" in unknown.output
