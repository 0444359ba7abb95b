"""CGI-DM mechanics on random-init tiny models: kept entries, the ε-ball, pairs, batching."""

from __future__ import annotations

import copy

import pytest
import torch

from dmsec.authenticate import (
    CgiDmConfig,
    authenticate,
    block_keep_mask,
    contrasting_gradient_inversion,
    loss_gap,
)
from dmsec.authenticate.inversion import PAPER_ALPHA, PAPER_EPS
from dmsec.errors import ConfigError
from dmsec.models.lora import LoraSpec, add_lora
from dmsec.models.pair import FullPair, LoraPair
from dmsec.models.unet2d import UNet2DHandle


def _full_pair(tiny_unet):
    other = UNet2DHandle.random(seed=1, channels=(8, 16), image_size=8).eval()
    return FullPair(tiny_unet, other)


def _images(n, shape, seed=0):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def _invert(pair, images, config):
    config = config.resolved(pair)
    x0 = pair.pretrained.encode_images(images)
    n = len(images)
    cond_pre, cond_ft = pair.encode_pre([11] * n), pair.encode_ft([11] * n)
    return x0, contrasting_gradient_inversion(pair, x0, cond_pre, cond_ft, config)


def test_kept_entries_never_change_and_perturbation_stays_in_the_ball(tiny_unet):
    pair = _full_pair(tiny_unet)
    eps = 0.5  # small enough that the ball, not the clamp, binds
    x0, result = _invert(pair, _images(3, (1, 8, 8)), CgiDmConfig(steps=12, eps=eps, alpha=0.2))
    keep = result.keep
    assert torch.equal(result.recovered[:, keep], x0[:, keep].float())
    delta = result.recovered - result.masked
    assert delta[:, keep].abs().max() == 0
    norms = delta.flatten(1).norm(dim=1)
    assert (norms <= eps * (1 + 1e-5)).all()
    assert (norms > 0.9 * eps).all(), "12 steps of 0.2 should reach the ball's surface"
    assert result.recovered.min() >= -1 and result.recovered.max() <= 1


def test_defaults_are_the_paper_values_scaled_by_removed_entries(tiny_unet, tiny_sd):
    zoo_like = CgiDmConfig().resolved(_full_pair(tiny_unet))  # 1x8x8: 32 removed entries
    scale = (32 / 8192) ** 0.5
    assert zoo_like.eps == pytest.approx(PAPER_EPS * scale)
    assert zoo_like.alpha == pytest.approx(PAPER_ALPHA * scale)
    assert zoo_like.clip == (-1.0, 1.0) and zoo_like.t_max == 999
    sd = CgiDmConfig().resolved(FullPair(tiny_sd, copy.deepcopy(tiny_sd)))  # 4x16x16 latents
    assert sd.eps == pytest.approx(PAPER_EPS * (512 / 8192) ** 0.5)
    assert sd.clip == (-100.0, 100.0)


def test_lora_pair_matches_the_two_network_path(tiny_unet):
    base = copy.deepcopy(tiny_unet)
    add_lora(tiny_unet.network, LoraSpec(rank=4), init_random=True)
    images = _images(2, (1, 8, 8))
    config = CgiDmConfig(steps=4)
    _, lora = _invert(LoraPair(tiny_unet), images, config)
    _, full = _invert(FullPair(base, tiny_unet), images, config)
    assert torch.allclose(lora.recovered, full.recovered, atol=1e-4)
    assert not torch.equal(lora.recovered, lora.masked)


def test_an_images_recovery_does_not_depend_on_its_batch(tiny_unet):
    pair = _full_pair(tiny_unet)
    images = _images(3, (1, 8, 8))
    config = CgiDmConfig(steps=5, baseline_draws=8)
    together = authenticate(pair, images, config)
    alone = authenticate(pair, images[1:2], config)
    assert torch.allclose(together[1].recovered_image, alone[0].recovered_image, atol=1e-5)
    assert together[1].baseline_gap == pytest.approx(alone[0].baseline_gap, abs=1e-6)
    chunked = authenticate(pair, images, CgiDmConfig(steps=5, baseline_draws=8, batch_size=2))
    assert [e.score for e in chunked] == pytest.approx([e.score for e in together], abs=1e-5)


def test_loss_gap_is_zero_for_identical_models(tiny_unet):
    pair = FullPair(tiny_unet, copy.deepcopy(tiny_unet))
    x0 = tiny_unet.encode_images(_images(2, (1, 8, 8)))
    cond = tiny_unet.encode_condition([11, 11])
    assert torch.allclose(loss_gap(pair, x0, cond, cond, n_draws=4), torch.zeros(2), atol=1e-6)


def test_stable_diffusion_pair_works_in_latent_space(tiny_sd):
    finetuned = copy.deepcopy(tiny_sd)
    add_lora(finetuned.network, LoraSpec(rank=2), init_random=True)
    pair = LoraPair(finetuned)
    images = _images(2, (3, 32, 32))
    evidence = authenticate(pair, images, CgiDmConfig(steps=2, baseline_draws=2))
    assert [e.recovered_image.shape for e in evidence] == [(3, 32, 32)] * 2
    x0 = pair.pretrained.encode_images(images)
    cond = pair.encode_ft(["a photo of sks dog"] * 2)
    config = CgiDmConfig(steps=2).resolved(pair)
    result = contrasting_gradient_inversion(pair, x0, cond, cond, config)
    keep = block_keep_mask((4, 16, 16))
    assert torch.equal(result.recovered[:, keep], x0[:, keep].float())
    assert ((result.recovered - result.masked).flatten(1).norm(dim=1) <= config.eps + 1e-4).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"eps": -1.0}, "`eps` must be > 0; got -1"),
        ({"alpha": 0.0}, "`alpha`"),
        ({"steps": 0}, "`steps`"),
        ({"clip": (1.0, -1.0)}, "`clip`"),
        ({"t_min": 5, "t_max": 2}, "`t_max`"),
        ({"pretrained_condition": "none"}, "`pretrained_condition`"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"baseline_draws": 0}, "`baseline_draws`"),
    ],
)
def test_bad_config_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace("(", r"\(")):
        CgiDmConfig(**kwargs)


def test_t_max_beyond_the_schedule_and_bad_images_are_refused(tiny_unet):
    pair = _full_pair(tiny_unet)
    with pytest.raises(ConfigError, match="`t_max`"):
        CgiDmConfig(t_max=1000).resolved(pair)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        authenticate(pair, _images(1, (1, 8, 8)) * 2, CgiDmConfig(steps=1))


def test_verifiers_by_name_cgidm_and_the_loss_gap_alone(tiny_unet):
    from dmsec.authenticate import VERIFIERS

    assert VERIFIERS.names() == ["cgi-dm", "loss-gap"]
    pair, images = _full_pair(tiny_unet), _images(2, (1, 8, 8))
    config = CgiDmConfig(steps=2, baseline_draws=4)
    cgi = VERIFIERS.get("cgi-dm")(config).verify(pair, images)
    gap = VERIFIERS.get("loss-gap")(config).verify(pair, images)
    assert all(e.score is not None and e.recovered_image is not None for e in cgi)
    assert all(e.score is None and e.recovered_image is None for e in gap)
    assert [e.baseline_gap for e in gap] == pytest.approx([e.baseline_gap for e in cgi], abs=1e-6)


def test_snapshots_are_the_recoveries_of_shorter_runs(tiny_unet):
    pair = _full_pair(tiny_unet)
    images = _images(2, (1, 8, 8))
    x0, long = _invert(pair, images, CgiDmConfig(steps=6, eps=2.0, alpha=0.3))
    config = CgiDmConfig(steps=6, eps=2.0, alpha=0.3).resolved(pair)
    cond = pair.encode_pre([11] * 2), pair.encode_ft([11] * 2)
    traced = contrasting_gradient_inversion(pair, x0, *cond, config, snapshots=(2, 6))
    _, short = _invert(pair, images, CgiDmConfig(steps=2, eps=2.0, alpha=0.3))
    assert set(traced.snapshots) == {2, 6}
    assert torch.equal(traced.snapshots[6], long.recovered)
    assert torch.equal(traced.snapshots[2], short.recovered)
    assert not torch.equal(traced.snapshots[2], traced.snapshots[6])
    evidence = authenticate(
        pair, images, CgiDmConfig(steps=6, eps=2.0, alpha=0.3), snapshots=(2, 6)
    )
    assert all(e.score_at[6] == pytest.approx(e.score) for e in evidence)
    with pytest.raises(ConfigError, match="snapshots"):
        contrasting_gradient_inversion(pair, x0, *cond, config, snapshots=(7,))
