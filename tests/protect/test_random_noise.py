"""The random-noise protector: registered beside AdvDM, ±ε per pixel on the 8-bit grid, seeded per
image, and its loss report under AdvDM's held-out draws."""

from __future__ import annotations

import pytest
import torch

from dmsec.errors import ConfigError
from dmsec.protect import PROTECTORS, AdvDM, RandomNoise, RandomNoiseConfig, protector_class


def _images(n: int, seed: int = 0) -> torch.Tensor:
    x = torch.rand((n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    x[:, :, 0, :] = 0.0  # the clamp binds at the range's ends
    return (x * 255).round() / 255


def test_registered_by_name_beside_advdm():
    assert {"advdm", "random-noise"} <= set(PROTECTORS.names())
    assert protector_class("random-noise") is RandomNoise and protector_class("advdm") is AdvDM


def test_every_pixel_moves_by_eps_unless_clamped_and_stays_on_the_grid(tiny_unet):
    x = _images(3)
    result = RandomNoise(tiny_unet, RandomNoiseConfig(eps=8 / 255, eval_draws=2)).protect(x)
    delta = (result.images - x).abs()
    inside = (x >= 8 / 255) & (x <= 1 - 8 / 255)
    assert torch.allclose(delta[inside], torch.full_like(delta[inside], 8 / 255), atol=1e-6)
    assert delta.max() <= 8 / 255 + 1e-6 and result.images.min() >= 0 and result.images.max() <= 1
    levels = result.images * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert torch.isfinite(result.loss_clean).all() and torch.isfinite(result.loss_protected).all()
    assert result.config["method"] == "random-noise" and (result.psnr > 30).all()


def test_an_image_gets_the_same_noise_alone_or_in_a_batch_and_seeds_differ(tiny_unet):
    x = _images(4)
    noise = RandomNoise(tiny_unet, RandomNoiseConfig(eps=8 / 255, eval_draws=0))
    batch = noise.protect(x, seeds=[5, 6, 7, 8]).images
    alone = noise.protect(x[2:3], seeds=[7]).images
    assert torch.equal(batch[2:3], alone)
    assert not torch.equal(noise.protect(x[2:3], seeds=[9]).images, alone)
    assert torch.isnan(noise.protect(x[:1]).loss_clean).all()  # eval_draws 0: not evaluated


def test_bad_config_and_inputs_name_the_field(tiny_unet):
    with pytest.raises(ConfigError, match="eps"):
        RandomNoiseConfig(eps=0)
    with pytest.raises(ConfigError, match="eval_draws"):
        RandomNoiseConfig(eval_draws=-1)
    with pytest.raises(ConfigError, match="seeds"):
        RandomNoise(tiny_unet).protect(_images(2), seeds=[1])
    with pytest.raises(ConfigError, match="images"):
        RandomNoise(tiny_unet).protect(_images(1) * 2)
