"""AdvDM on the trained small zoo's base: the training loss on protected images is higher."""

from __future__ import annotations

import torch

from dmsec.protect import AdvDM, AdvDMConfig
from dmsec.protect.objective import expected_loss


def test_training_loss_is_higher_on_protected_images_under_the_same_draws(small_zoo):
    base = small_zoo.load("base")
    clean = small_zoo.train_images("full-7a-light")
    result = AdvDM(base, AdvDMConfig(eps=8 / 255, eval_draws=0)).protect(clean)
    # draws independent of the attack's: other seeds, 64 (t, ε) per image, common to both sets
    cond = base.encode_condition([None] * len(clean))
    seeds = [10_000 + i for i in range(len(clean))]
    t_range = (0, base.num_train_timesteps - 1)
    loss_clean = expected_loss(base, clean, cond, seeds, 64, t_range)
    loss_protected = expected_loss(base, result.images, cond, seeds, 64, t_range)
    assert (loss_protected > loss_clean).all(), (loss_clean, loss_protected)
    assert loss_protected.mean() > 1.3 * loss_clean.mean()
    # ... and the protector's own held-out report agrees
    reported = AdvDM(base, AdvDMConfig(eps=8 / 255, eval_draws=16)).protect(clean)
    assert torch.equal(reported.images, result.images)
    assert (reported.loss_protected > reported.loss_clean).all()
    assert (reported.psnr > 30).all() and (reported.ssim > 0.95).all()
