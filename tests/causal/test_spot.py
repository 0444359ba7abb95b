"""SPOT end to end on small data, the sampling rule (3), and its config round trip."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dmsec.causal.graphs import is_ancestral
from dmsec.causal.learner import MAGLearnerConfig
from dmsec.causal.metrics import score_graph
from dmsec.causal.posterior import SkeletonPosterior
from dmsec.causal.simulate import SimulatedDataset
from dmsec.causal.solvers import LBFGSBSolver
from dmsec.causal.spot import (
    SPOTConfig,
    sampling_probabilities,
    spot,
    spot_config_from_dict,
    spot_config_to_dict,
    update_probabilities,
)

FAST = SPOTConfig(solver="lbfgsb", solver_options=(("max_iter", 60),))
SOFT = dataclasses.replace(FAST, guidance="soft", temperature=1.0, floor=0.01)


def test_sampling_probabilities_follow_equation_3() -> None:
    S = np.array([[0.0, 0.9, 0.001], [0.9, 0.0, 0.5], [0.001, 0.5, 0.0]])
    p = sampling_probabilities(S, temperature=1.0, floor=0.01)
    assert np.allclose(p, p.T) and np.all(np.diag(p) == 0)
    assert p[0, 1] == pytest.approx(0.9) and p[1, 2] == pytest.approx(0.5)
    assert p[0, 2] == pytest.approx(0.01)  # floored
    sharp = sampling_probabilities(S, temperature=0.25, floor=0.0)
    assert sharp[0, 1] > 0.99 and sharp[0, 2] < 1e-6 and sharp[1, 2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="`temperature`"):
        SPOTConfig(temperature=0)


def test_hard_guidance_frees_exactly_the_pairs_above_the_cut() -> None:
    S = np.array([[0.0, 0.9, 0.2], [0.9, 0.0, 0.31], [0.2, 0.31, 0.0]])
    p = update_probabilities(S, dataclasses.replace(FAST, guidance="hard", cut=0.3))
    assert np.array_equal(p, np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
    assert np.allclose(update_probabilities(S, SOFT), sampling_probabilities(S, 1.0, 0.01))
    with pytest.raises(ValueError, match="`guidance`"):
        SPOTConfig(guidance="both")
    with pytest.raises(ValueError, match="`cut`"):
        SPOTConfig(cut=1.0)


@pytest.mark.parametrize("config", [FAST, SOFT], ids=["hard", "soft"])
def test_spot_learns_a_mag_close_to_the_truth(
    small_dataset: SimulatedDataset, posterior: SkeletonPosterior, config: SPOTConfig
) -> None:
    result = spot(small_dataset.data, config, posterior)
    assert is_ancestral(result.mag)
    assert result.extra["posterior"].shape == (8, 8)
    assert score_graph(result.pag, small_dataset.pag).skeleton_f1 >= 0.6


@pytest.mark.parametrize("config", [FAST, SOFT], ids=["hard", "soft"])
def test_standardising_the_input_leaves_the_skeleton_unchanged(
    small_dataset: SimulatedDataset, posterior: SkeletonPosterior, config: SPOTConfig
) -> None:
    X = small_dataset.data
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    rescaled = X * np.array([1e3, 1e-2, 1.0, 7.0, 0.5, 1.0, 40.0, 1.0]) + 3.0  # other units
    skeletons = [spot(data, config, posterior).mag != 0 for data in (X, Z, rescaled)]
    assert np.any(skeletons[0])
    assert np.array_equal(skeletons[0], skeletons[1])
    assert np.array_equal(skeletons[0], skeletons[2])


def test_config_round_trip_and_unknown_keys() -> None:
    config = SPOTConfig(
        temperature=0.5,
        learner=MAGLearnerConfig(penalty=0.02),
        solver="lbfgsb",
        solver_options=(("max_iter", 50),),
    )
    assert spot_config_from_dict(spot_config_to_dict(config)) == config
    assert spot_config_from_dict({}) == SPOTConfig()
    assert (
        spot_config_from_dict({"learner": {"penalty": 0.1}}).learner.w_threshold
        == SPOTConfig().learner.w_threshold
    )
    assert spot_config_from_dict({"solver": "lbfgsb"}).make_solver() == LBFGSBSolver()
    with pytest.raises(ValueError, match="`solver_options`"):
        SPOTConfig(solver="adam", solver_options=(("max_iter", 5),))
    with pytest.raises(ValueError, match="tempreature"):
        spot_config_from_dict({"tempreature": 1.0})
    with pytest.raises(ValueError, match=r"learner\.lambda"):
        spot_config_from_dict({"learner": {"lambda": 0.1}})


def test_spot_keeps_every_pair_above_its_keep_cut(
    small_dataset: SimulatedDataset, posterior: SkeletonPosterior
) -> None:
    from dmsec.causal.skeleton import posterior_adjacency

    result = spot(small_dataset.data, FAST, posterior)
    S = result.extra["posterior"]
    keep = posterior_adjacency(S, FAST.keep_cut or 0.0)
    assert np.any(keep) and np.array_equal(result.extra["keep"], keep)
    assert np.all(result.mag[keep] != 0) and np.all(result.pag[keep] != 0)
    assert result.extra["posterior_seconds"] + result.extra["learner_seconds"] == pytest.approx(result.seconds)  # fmt: skip


@pytest.mark.parametrize("skeleton", ["posterior", "union", "learner"])
def test_the_result_adds_to_the_posterior_skeleton(
    small_dataset: SimulatedDataset, posterior: SkeletonPosterior, skeleton: str
) -> None:
    """Default ("posterior"): the result's skeleton is exactly S > cut, with the learner's marks on
    the edges it learned; "union" holds every posterior pair; "learner" is the learner's PAG."""
    from dmsec.causal.graphs import CIRCLE, NONE
    from dmsec.causal.skeleton import posterior_adjacency

    config = dataclasses.replace(FAST, skeleton=skeleton)
    result = spot(small_dataset.data, config, posterior)
    post = posterior_adjacency(result.extra["posterior"], config.cut)
    learned = result.extra["learner_pag"]
    assert np.any(post)
    if skeleton == "learner":
        assert np.array_equal(result.pag, learned)
        return
    assert np.all(result.pag[post] != NONE)  # no posterior pair is dropped
    both = post & (learned != NONE)
    assert np.array_equal(result.pag[both], learned[both])  # the learned marks stay
    only_post = post & (learned == NONE)
    assert np.all(result.pag[only_post] == CIRCLE)  # marks the learner did not give: circles
    if skeleton == "posterior":
        assert np.array_equal(result.pag != NONE, post)
    else:
        assert np.array_equal(result.pag != NONE, post | (learned != NONE))


def test_keep_cut_and_budget_are_validated_by_name(small_dataset: SimulatedDataset) -> None:
    with pytest.raises(ValueError, match="`keep_cut` must be >= `cut`"):
        SPOTConfig(cut=0.32, keep_cut=0.2)
    with pytest.raises(ValueError, match="`keep_cut` must be None or in"):
        SPOTConfig(keep_cut=1.5)
    assert (
        SPOTConfig(guidance="soft", cut=0.5, keep_cut=0.2).keep_cut == 0.2
    )  # soft: all pairs move
    with pytest.raises(ValueError, match="`max_seconds`"):
        spot(small_dataset.data, FAST, np.zeros((8, 8)), max_seconds=0.0)
    assert spot_config_from_dict({"keep_cut": None}).keep_cut is None
    with pytest.raises(ValueError, match="`skeleton` must be one of"):
        SPOTConfig(skeleton="both")
    assert SPOTConfig().skeleton == "posterior"
