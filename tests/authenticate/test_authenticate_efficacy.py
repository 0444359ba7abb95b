"""CGI-DM on a trained small-zoo checkpoint: training images score above its hold-outs."""

from __future__ import annotations

import pytest
import torch

from dmsec.authenticate import CgiDmConfig, authenticate
from dmsec.models.pair import make_pair


@pytest.fixture(scope="module")
def heavy_evidence(small_zoo):
    """Evidence for the 5 training images and 5 hold-outs of the heavy full fine-tune.

    200 PGD steps instead of the paper's 1,000 keep this test near 15 s; the default config is
    measured by benchmarks/authentication.py.
    """
    name = small_zoo.select(method="full", strength="heavy", protected=True)[0].name
    pair = make_pair(small_zoo.load("base"), small_zoo.load(name))
    images = torch.cat([small_zoo.train_images(name), small_zoo.holdout_images(name)])
    evidence = authenticate(pair, images, CgiDmConfig(steps=200, baseline_draws=32))
    return evidence[:5], evidence[5:]


def test_training_images_score_above_hold_outs(heavy_evidence):
    members, holdouts = heavy_evidence
    wins = sum(m.score > h.score for m in members for h in holdouts)
    assert wins / 25 >= 0.8, f"AUC {wins / 25:.2f}"
    assert max(m.score for m in members) > max(h.score for h in holdouts)


def test_inversion_moves_members_towards_the_original(heavy_evidence):
    members, holdouts = heavy_evidence
    gain_members = sum(m.score - m.masked_score for m in members) / 5
    gain_holdouts = sum(h.score - h.masked_score for h in holdouts) / 5
    assert gain_members > 0.03 and gain_members > gain_holdouts


def test_loss_gap_baseline_ranks_the_heavy_fine_tunes_members_first(heavy_evidence):
    members, holdouts = heavy_evidence
    assert min(m.baseline_gap for m in members) > max(h.baseline_gap for h in holdouts)
