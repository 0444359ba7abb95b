"""pipelines/protect.py on a local Ray cluster (2 CPUs): same manifest as the in-process run."""

from __future__ import annotations

import os

import pytest
import ray

from dmsec.jobs import ray_job
from dmsec.protect import AdvDMConfig
from dmsec.protect.job import ProtectJobConfig, run_local


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.ray
def test_ray_job_isolates_failures_and_matches_the_local_run(
    ray_cluster, image_folder, tmp_path, tiny_model_dir
):
    def job(out):
        return ProtectJobConfig(in_dir=str(image_folder), out_dir=str(out), base=str(tiny_model_dir),
                                advdm=AdvDMConfig(eps=8 / 255, steps=3, eval_draws=2), batch_size=2)  # fmt: skip

    on_ray = ray_job("protect").run(job(tmp_path / "ray"), progress=False)
    local = run_local(job(tmp_path / "local"), progress=False)
    rows = {r["source"]: r for r in on_ray.to_pylist()}
    assert (
        rows["corrupt.png"]["status"] == "error" and "cannot decode" in rows["corrupt.png"]["error"]
    )
    assert sum(r["status"] == "ok" for r in rows.values()) == 5
    expected = {r["source"]: r["protected_sha256"] for r in local.to_pylist()}
    assert {s: r["protected_sha256"] for s, r in rows.items()} == expected
    assert all(
        (tmp_path / "ray" / r["output"]).is_file() for r in rows.values() if r["status"] == "ok"
    )
    assert (tmp_path / "ray" / "manifest.parquet").is_file()
