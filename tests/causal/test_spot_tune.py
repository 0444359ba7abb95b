"""The Ray Tune search (pipelines/spot_tune.py) on a tiny problem, and `dmsec spot tune`."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray  # a core dependency (pyproject): a broken install fails here, it is not skipped
import yaml

from dmsec.causal.spot import spot_config_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(
        num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False, log_to_driver=False
    )
    yield
    ray.shutdown()


def test_evaluate_trial_reports_running_means() -> None:
    from dmsec.causal.cli import load_tune_pipeline

    pipeline = load_tune_pipeline()
    config = pipeline.TuneConfig.quick(graphs_per_size=2)
    graphs = pipeline.validation_graphs(config)
    params = {"guidance": "soft", "cut": 0.5, "penalty": 0.05, "w_threshold": 0.05, "temperature": 1.0, "floor": 0.01, "rho_growth": 10.0,
              "h_decrease": 0.25, "solver": "lbfgsb", "lr": 0.01, "max_iter": 50}  # fmt: skip
    reports = list(pipeline.evaluate_trial(params, graphs, max_seconds=60))
    assert [r["graphs"] for r in reports] == [1, 2]
    assert all(0 <= r["skeleton_f1"] <= 1 for r in reports)


def test_tune_cli_writes_trials_and_a_loadable_best_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dmsec.cli import main

    res = CliRunner().invoke(
        main, ["spot", "tune", "--quick", "--trials", "2", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    trials = pq.read_table(tmp_path / "trials.parquet").to_pylist()
    assert len(trials) == 2 and all(0 <= t["skeleton_f1"] <= 1 for t in trials)
    best = spot_config_from_dict(yaml.safe_load((tmp_path / "best_config.yaml").read_text()))
    assert best.learner.max_seconds == 0.0
    assert (tmp_path / "tune_config.json").is_file()
