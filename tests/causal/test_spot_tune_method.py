"""The unguided learner's own search in pipelines/spot_tune.py, without a Ray cluster."""

from __future__ import annotations

import pytest

from dmsec.errors import ConfigError


def _pipeline():  # type: ignore[no-untyped-def]
    from dmsec.causal.cli import load_tune_pipeline

    return load_tune_pipeline()


def test_method_is_validated_by_name() -> None:
    with pytest.raises(ConfigError, match="`method`"):
        _pipeline().TuneConfig(method="fci")


def test_unguided_search_space_has_only_the_learners_knobs() -> None:
    space = _pipeline().search_space("unguided")
    assert not {"guidance", "cut", "temperature", "floor"} & set(space)
    assert {"penalty", "w_threshold", "rho_growth", "solver"} <= set(space)
    assert {"guidance", "cut"} <= set(_pipeline().search_space("spot"))


def test_unguided_trial_ignores_the_posterior() -> None:
    pipeline = _pipeline()
    graphs = pipeline.validation_graphs(pipeline.TuneConfig.quick(graphs_per_size=1))
    params = {"penalty": 0.05, "w_threshold": 0.05, "rho_growth": 10.0, "solver": "lbfgsb", "lr": 0.01, "max_iter": 50}  # fmt: skip
    # a posterior of zeros would freeze every pair under SPOT; the unguided learner never reads it
    blind = [{**g, "posterior": g["posterior"] * 0.0} for g in graphs]
    reports = list(pipeline.evaluate_trial(params, blind, max_seconds=60, method="unguided"))
    same = list(pipeline.evaluate_trial(params, graphs, max_seconds=60, method="unguided"))
    assert [r["skeleton_f1"] for r in reports] == [r["skeleton_f1"] for r in same]
    assert reports[-1]["skeleton_f1"] > 0
