"""Protecting folders: ProtectStep and run_local on a saved tiny UNet (3 PGD steps: mechanics)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from protect_images import write_images

from dmsec.errors import ConfigError
from dmsec.protect import AdvDMConfig
from dmsec.protect.job import MANIFEST_FILE, ProtectJobConfig, plan_sources, run_local
from dmsec.protect.step import MANIFEST_SCHEMA, ProtectStep

EPS = 8 / 255


def _job(in_dir, out_dir, model_dir, **kw):
    advdm = AdvDMConfig(eps=EPS, steps=3, eval_draws=2)
    return ProtectJobConfig(in_dir=str(in_dir), out_dir=str(out_dir), base=str(model_dir),
                            advdm=advdm, batch_size=3, **kw)  # fmt: skip


def _grey(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255


def test_a_folder_is_protected_with_one_manifest_row_per_image(
    image_folder, tmp_path, tiny_model_dir
):
    out = tmp_path / "out"
    manifest = run_local(_job(image_folder, out, tiny_model_dir), progress=False)
    assert pq.read_table(out / MANIFEST_FILE).schema.equals(MANIFEST_SCHEMA, check_metadata=True)
    rows = {r["source"]: r for r in manifest.to_pylist()}
    assert set(rows) == {"a.png", "b.png", "sub/c.png", "d_rgb.png", "e.jpg", "corrupt.png"}
    bad = rows.pop("corrupt.png")
    assert bad["status"] == "error" and "cannot decode" in bad["error"] and bad["output"] is None
    assert all(r["status"] == "ok" and r["error"] is None for r in rows.values())
    assert rows["e.jpg"]["output"] == "e.jpg.png" and rows["sub/c.png"]["output"] == "sub/c.png"
    assert rows["d_rgb.png"]["resized"] and (
        rows["d_rgb.png"]["width"],
        rows["d_rgb.png"]["out_width"],
    ) == (20, 8)
    for source in (
        "a.png",
        "b.png",
        "sub/c.png",
    ):  # same size and grey: compare the files themselves
        original, protected = _grey(image_folder / source), _grey(out / rows[source]["output"])
        assert np.abs(protected - original).max() <= EPS + 1e-9
        assert not np.array_equal(protected, original)
        assert rows[source]["linf"] <= EPS + 1e-6 and rows[source]["psnr"] > 30
    record = json.loads((out / "protect.json").read_text())
    assert record["protected"] == 5 and record["errors"] == 1
    assert record["config"]["advdm"]["eps"] == EPS and record["effective"]["alpha"] == EPS / 16


def test_rerunning_a_job_reproduces_every_image(image_folder, tmp_path, tiny_model_dir):
    first = run_local(_job(image_folder, tmp_path / "o1", tiny_model_dir), progress=False)
    job = _job(image_folder, tmp_path / "o2", tiny_model_dir)
    second = run_local(ProtectJobConfig(**{**job.__dict__, "batch_size": 1}), progress=False)
    assert first["protected_sha256"].to_pylist() == second["protected_sha256"].to_pylist()
    assert first["seed"].to_pylist() == second["seed"].to_pylist()


def test_one_failing_image_does_not_fail_its_batch(image_folder, tmp_path, tiny_model_dir):
    step = _job(image_folder, tmp_path / "out", tiny_model_dir).make_step()
    protect = step.protector.protect

    def flaky(images, seeds=None, progress=False):
        if any(abs(float(x.mean()) - 128 / 255) < 1e-3 for x in images):  # the flat grey e.jpg
            raise RuntimeError("simulated device failure")
        return protect(images, seeds, progress)

    step.protector.protect = flaky  # type: ignore[method-assign]
    table = step({"source": ["a.png", "e.jpg", "b.png", "../escape.png"]})
    rows = {r["source"]: r for r in table.to_pylist()}
    assert table.schema.equals(MANIFEST_SCHEMA)
    assert rows["a.png"]["status"] == rows["b.png"]["status"] == "ok"
    assert (
        rows["e.jpg"]["status"] == "error" and "simulated device failure" in rows["e.jpg"]["error"]
    )
    assert rows["e.jpg"]["sha256"] is not None  # what is known about the input is kept
    assert (
        rows["../escape.png"]["status"] == "error"
        and "relative path" in rows["../escape.png"]["error"]
    )


def test_output_name_collisions_become_error_rows(tmp_path):
    write_images(tmp_path / "in", ["x.jpg", "x.jpg.png", "y.png"])
    sources, collisions = plan_sources(tmp_path / "in")
    assert sources == ["x.jpg", "y.png"]
    assert [c["source"] for c in collisions] == ["x.jpg.png"] and "taken" in collisions[0]["error"]


def test_originals_are_registered_once(image_folder, tmp_path, tiny_model_dir):
    from dmsec.match.registry import ProtectedArtworkIndex

    registry = tmp_path / "registry"
    job = _job(
        image_folder, tmp_path / "out", tiny_model_dir, registry=str(registry), owner="artist"
    )
    manifest = run_local(job, progress=False)
    ids = {r["source"]: r["artwork_id"] for r in manifest.to_pylist()}
    assert ids["corrupt.png"] is None and all(ids[s] is not None for s in ids if s != "corrupt.png")
    assert len(ProtectedArtworkIndex.open(registry)) == 5
    again = run_local(_job(image_folder, tmp_path / "out2", tiny_model_dir, registry=str(registry), owner="artist"), progress=False)  # fmt: skip
    assert {r["source"]: r["artwork_id"] for r in again.to_pylist()} == ids
    assert len(ProtectedArtworkIndex.open(registry)) == 5


def test_job_config_validation_names_the_field(tmp_path, tiny_model_dir):
    base = {
        "in_dir": str(tmp_path / "in"),
        "out_dir": str(tmp_path / "out"),
        "base": str(tiny_model_dir),
    }
    with pytest.raises(ConfigError, match="unknown key `epsilon`"):
        ProtectJobConfig.from_dict({**base, "epsilon": 0.1})
    with pytest.raises(ConfigError, match="unknown key `advdm.strength`"):
        ProtectJobConfig.from_dict({**base, "advdm": {"strength": 3}})
    with pytest.raises(ConfigError, match="`advdm.eps` must be in"):
        ProtectJobConfig.from_dict({**base, "advdm": {"eps": 2}})
    with pytest.raises(ConfigError, match="`out_dir` must not be `in_dir` or nested"):
        ProtectJobConfig.from_dict({**base, "out_dir": str(tmp_path / "in" / "protected")})
    with pytest.raises(ConfigError, match="`owner` is required"):
        ProtectJobConfig.from_dict({**base, "registry": str(tmp_path / "reg")})
    with pytest.raises(ConfigError, match="`batch_size` must be >= 1"):
        ProtectJobConfig.from_dict({**base, "batch_size": 0})


def test_the_step_accepts_arrow_batches_and_empty_ones(image_folder, tmp_path, tiny_model_dir):
    import pyarrow as pa

    step = ProtectStep(
        image_folder, tmp_path / "out", tiny_model_dir, AdvDMConfig(steps=1, eval_draws=0)
    )
    assert step({"source": []}).num_rows == 0
    table = step(pa.table({"source": ["a.png"]}))
    row = table.to_pylist()[0]
    assert row["status"] == "ok" and np.isnan(row["loss_clean"])  # eval_draws=0: not evaluated
    assert torch.device(step.device).type in ("cpu", "cuda")


def test_the_library_side_never_imports_ray():
    import subprocess
    import sys

    code = (
        "import sys, dmsec.protect, dmsec.protect.job, dmsec.protect.cli, dmsec.protect.step; "
        "sys.exit(int('ray' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
