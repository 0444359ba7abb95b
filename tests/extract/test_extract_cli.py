"""`dmsec extract` end to end on a tiny saved LoRA fine-tune: PNGs, Parquet, clear errors."""

from __future__ import annotations

import copy

import pyarrow.parquet as pq
from click.testing import CliRunner

from dmsec.cli import main
from dmsec.models.lora import LoraSpec, add_lora, save_lora


def test_extract_writes_candidates(tiny_unet, tmp_path):
    base_dir = tiny_unet.save(tmp_path / "base")
    ft = copy.deepcopy(tiny_unet)
    add_lora(ft.network, LoraSpec(rank=4), init_random=True)
    lora = save_lora(ft.network, tmp_path / "lora", base_model=str(base_dir))
    out = tmp_path / "out"
    args = [
        "extract",
        str(lora),
        "--base",
        str(base_dir),
        "--out",
        str(out),
        "--n-samples",
        "6",
        "--steps",
        "4",
        "--n-groups",
        "2",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "candidates.parquet").to_pylist()
    assert len(table) >= 2 and [r["rank"] for r in table] == list(range(len(table)))
    assert sum(r["group_size"] for r in table) == 6
    for r in table:
        assert (out / r["image_path"]).read_bytes() == r["image_png"]
        assert r["image_png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_extract_without_base_is_a_clear_error(tiny_unet, tmp_path):
    path = tiny_unet.save_single_file(tmp_path / "ft.safetensors")
    result = CliRunner().invoke(main, ["extract", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "ft.safetensors" in result.output and "base model" in result.output
