"""`dmsec spot` through the top-level CLI: a Parquet table in, a graph file out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from dmsec.causal.posterior import SkeletonPosterior
from dmsec.causal.simulate import SimulationConfig, simulate
from dmsec.cli import main


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    ds = simulate(SimulationConfig(n_observed=5, n_latent=1, n_samples=600), seed=3)
    cols = {f"x{i}": ds.data[:, i] for i in range(5)}
    cols["name"] = [f"row{i}" for i in range(600)]  # non-numeric: ignored
    path = tmp_path / "facts.parquet"
    pq.write_table(pa.table(cols), path)
    return path


def test_spot_on_parquet_writes_json_graph(table: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"solver": "lbfgsb", "solver_options": {"max_iter": 50}}))
    out = tmp_path / "graph.json"
    res = CliRunner().invoke(main, ["spot", str(table), "--out", str(out), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["nodes"] == [f"x{i}" for i in range(5)]
    assert doc["run"]["config"]["solver_options"] == {"max_iter": 50}
    for edge in doc["edges"]:
        assert edge["graph"] in ("pag", "mag") and 0 <= edge["posterior"] <= 1
        assert edge["mark_at_target"] in ("arrow", "tail", "circle")


def test_spot_writes_parquet_and_selects_columns(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "graph.parquet"
    res = CliRunner().invoke(
        main, ["spot", "run", str(table), "--out", str(out), "--columns", "x0,x1,x2", "--unguided"]
    )
    assert res.exit_code == 0, res.output
    edges = pq.read_table(out)
    assert set(edges.column("source").to_pylist()) | set(edges.column("target").to_pylist()) <= {
        "x0",
        "x1",
        "x2",
    }
    assert b"dmsec.spot" in edges.schema.metadata


def test_bad_column_is_named(table: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["spot", str(table), "--out", str(tmp_path / "g.json"), "--columns", "x0,name"]
    )
    assert res.exit_code != 0 and "['name']" in str(res.exception)


def test_build_posterior_command(tmp_path: Path) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({
        "n_graphs": 4, "heldout_graphs": 2, "observed_range": [6, 8], "sample_sizes": [200],
        "n_stages": 1, "n_vicinal": 2, "n_estimators": 5,
    }))  # fmt: skip
    res = CliRunner().invoke(
        main, ["spot", "build-posterior", "--config", str(cfg), "--out", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    model = SkeletonPosterior.load(tmp_path / "m")
    assert model(np.random.default_rng(0).normal(size=(100, 4))).shape == (4, 4)


@pytest.fixture(scope="module")
def wide_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """Forty observed variables of the reporting split: an unbounded SPOT run takes many seconds."""
    from dmsec.causal.protocol import split_dataset

    ds = split_dataset("reporting", 40, 5, 2000)
    path = tmp_path_factory.mktemp("wide") / "wide.parquet"
    pq.write_table(pa.table({f"x{i}": ds.data[:, i] for i in range(40)}), path)
    return path, ds.data


def test_max_seconds_stops_within_the_budget_and_says_so(
    wide_table: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "g.json"
    res = CliRunner().invoke(main, ["spot", str(wide_table[0]), "--out", str(out), "--max-seconds", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads(out.read_text())["run"]
    assert run["timed_out"] is True and run["max_seconds"] == 3.0
    assert set(run["stage_seconds"]) == {"read", "posterior", "learner"}
    # the budget, plus one objective evaluation and the MAG/PAG conversion after the deadline
    assert run["seconds"] < 3.0 + 2.5, run
    assert "stopped at the --max-seconds budget" in res.output
    assert "spot: learn done:" in res.output  # not a terminal: one plain line per stage


def test_a_run_within_its_budget_is_not_timed_out(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    res = CliRunner().invoke(main, ["spot", str(table), "--out", str(out), "--max-seconds", "120"])
    assert res.exit_code == 0, res.output
    run = json.loads(out.read_text())["run"]
    assert run["timed_out"] is False and run["seconds"] < 120


def test_skeleton_only_equals_the_thresholded_posterior(
    wide_table: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    from dmsec.causal.posterior import load_posterior
    from dmsec.causal.skeleton import posterior_adjacency

    path, data = wide_table
    out = tmp_path / "g.json"
    res = CliRunner().invoke(main, ["spot", str(path), "--out", str(out), "--skeleton-only", "--cut", "0.4"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    got = {(e["source"], e["target"]) for e in doc["edges"]}
    assert all(e["graph"] == "pag" and e["mark_at_target"] == e["mark_at_source"] == "circle" for e in doc["edges"])  # fmt: skip
    adj = posterior_adjacency(load_posterior()(data), 0.4)
    want = {(f"x{a}", f"x{b}") for a, b in np.argwhere(np.triu(adj))}
    assert got == want and len(want) > 10
    assert doc["run"]["method"] == "skeleton-only" and doc["run"]["cut"] == 0.4


def test_cut_without_skeleton_only_is_refused(table: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["spot", str(table), "--out", str(tmp_path / "g.json"), "--cut", "0.3"])  # fmt: skip
    assert res.exit_code != 0 and "--cut applies to --skeleton-only" in res.output


def test_default_pag_has_the_posterior_skeleton_and_skeleton_learner_is_the_old_graph(
    table: Path, tmp_path: Path
) -> None:
    """By default the PAG's adjacencies are the posterior's S > cut (0.32); `--skeleton learner`
    gives the learner's own PAG, whose edges the default marks where it has them."""
    from dmsec.causal.posterior import load_posterior
    from dmsec.causal.protocol import standardize
    from dmsec.causal.skeleton import posterior_adjacency
    from dmsec.causal.table import read_numeric_table

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"solver": "lbfgsb", "solver_options": {"max_iter": 50}}))
    docs = {}
    for skeleton in ("posterior", "learner"):
        out = tmp_path / f"{skeleton}.json"
        args = ["spot", str(table), "--out", str(out), "--config", str(cfg)]
        res = CliRunner().invoke(main, args + ([] if skeleton == "posterior" else ["--skeleton", skeleton]))  # fmt: skip
        assert res.exit_code == 0, res.output
        docs[skeleton] = json.loads(out.read_text())
        assert docs[skeleton]["run"]["config"]["skeleton"] == skeleton

    def pag_pairs(doc: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
        return {(e["source"], e["target"]): (e["mark_at_source"], e["mark_at_target"]) for e in doc["edges"] if e["graph"] == "pag"}  # fmt: skip

    X, names = read_numeric_table(table, None)
    adj = posterior_adjacency(load_posterior()(standardize(X)), 0.32)
    want = {(names[a], names[b]) for a, b in np.argwhere(np.triu(adj))}
    got, learned = pag_pairs(docs["posterior"]), pag_pairs(docs["learner"])
    assert set(got) == want and want
    assert all(got[pair] == learned[pair] for pair in set(got) & set(learned))  # the learned marks
    assert all(got[pair] == ("circle", "circle") for pair in set(got) - set(learned))
