"""AdvDM mechanics on random-init tiny models: the ε-ball, the pixel range, the 8-bit grid,
determinism, batch independence, latent models, defaults and validation."""

from __future__ import annotations

import pytest
import torch

from dmsec.errors import ConfigError
from dmsec.protect import PAPER_ALPHA, PAPER_EPS, PAPER_STEPS, AdvDM, AdvDMConfig
from dmsec.protect.advdm import quantize_in_ball


def _images(n, shape, seed=0, levels=True):
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))
    x[:, :, 0, :] = 0.0  # pixels at the range's ends: the clamp must bind there
    x[:, :, -1, :] = 1.0
    return (x * 255).round() / 255 if levels else x


def _config(**kw):
    return AdvDMConfig(**{"eps": 8 / 255, "steps": 12, "eval_draws": 2, **kw})


def test_perturbation_stays_in_the_ball_and_the_pixel_range(tiny_unet):
    x = _images(3, (1, 8, 8))
    result = AdvDM(tiny_unet, _config(alpha=1 / 255)).protect(x)
    delta = result.images - x
    assert delta.abs().max() <= 8 / 255 + 1e-6
    assert torch.allclose(result.delta, delta) and torch.allclose(
        result.linf, delta.abs().flatten(1).amax(1)
    )
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert delta[:, :, 0, :].min() >= 0 and delta[:, :, -1, :].max() <= 0  # clamped at 0 and 1
    assert (result.linf > 6 / 255).all(), "12 steps of 1/255 should reach far into the ball"


def test_output_is_on_the_8bit_grid_inside_the_ball_even_for_off_grid_inputs(tiny_unet):
    x = _images(2, (1, 8, 8), levels=False)
    eps = 5.5 / 255  # not a whole number of levels
    result = AdvDM(tiny_unet, _config(eps=eps)).protect(x)
    levels = result.images * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert (result.images - x).abs().max() <= eps + 1e-6
    raw = AdvDM(tiny_unet, _config(eps=eps, quantize=False)).protect(x)
    assert not torch.allclose(raw.images * 255, (raw.images * 255).round(), atol=1e-4)


def test_quantize_keeps_float_values_where_the_ball_holds_no_level():
    x = torch.tensor(
        [[[[0.5 / 255 + 0.2 / 255]]]]
    )  # between levels 0 and 1, ε too small to reach one
    protected = x + 0.1 / 255
    out = quantize_in_ball(x, protected, 0.2 / 255)
    assert torch.equal(out, protected)


def test_same_seeds_give_identical_results_and_other_seeds_do_not(tiny_unet):
    x = _images(3, (1, 8, 8))
    a = AdvDM(tiny_unet, _config()).protect(x, seeds=[5, 6, 7])
    b = AdvDM(tiny_unet, _config()).protect(x, seeds=[5, 6, 7])
    c = AdvDM(tiny_unet, _config()).protect(x, seeds=[8, 9, 10])
    assert torch.equal(a.images, b.images) and torch.equal(a.loss_protected, b.loss_protected)
    assert not torch.equal(a.images, c.images)
    assert AdvDM(tiny_unet, _config(seed=3)).protect(x).seeds == [3, 4, 5]


def test_an_image_is_protected_the_same_alone_or_in_any_batch(tiny_unet):
    x = _images(4, (1, 8, 8))
    together = AdvDM(tiny_unet, _config()).protect(x, seeds=[0, 1, 2, 3])
    alone = AdvDM(tiny_unet, _config(batch_size=1)).protect(x.flip(0), seeds=[3, 2, 1, 0])
    # per-image streams: only float rounding of batched kernels could flip a gradient's sign
    same = (together.images == alone.images.flip(0)).float().mean()
    assert same > 0.99


def test_latent_models_get_a_pixel_perturbation_through_the_vae(tiny_sd):
    x = _images(2, (3, 32, 32))
    result = AdvDM(tiny_sd, _config(condition="a painting", steps=4)).protect(x)
    assert result.images.shape == x.shape
    assert (result.images - x).abs().max() <= 8 / 255 + 1e-6
    assert (result.linf > 0).all()


def test_model_modes_and_gradient_flags_are_restored(tiny_unet):
    tiny_unet.network.train()
    flags = [p.requires_grad for p in tiny_unet.network.parameters()]
    AdvDM(tiny_unet, _config(steps=2)).protect(_images(1, (1, 8, 8)))
    assert tiny_unet.network.training
    assert [p.requires_grad for p in tiny_unet.network.parameters()] == flags
    assert all(p.grad is None for p in tiny_unet.network.parameters())


def test_defaults_are_mists_and_alpha_scales_with_eps(tiny_unet):
    config = AdvDM(tiny_unet).config
    assert (config.eps, config.alpha, config.steps) == (PAPER_EPS, PAPER_ALPHA, PAPER_STEPS)
    assert config.eps == 16 / 255 and config.alpha == 1 / 255 and config.steps == 100
    assert config.t_min == 0 and config.t_max == tiny_unet.num_train_timesteps - 1
    assert AdvDM(tiny_unet, AdvDMConfig(eps=8 / 255)).config.alpha == pytest.approx(0.5 / 255)
    assert AdvDM(tiny_unet, AdvDMConfig(eps=8 / 255, alpha=2 / 255)).config.alpha == 2 / 255


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"eps": 2}, "`eps` must be in (0, 1]; got 2"),
        ({"eps": 0}, "`eps` must be in (0, 1]"),
        ({"eps": 0.1, "alpha": 0.2}, "`alpha` must be in (0, eps=0.1]"),
        ({"steps": 0}, "`steps` must be >= 1"),
        ({"draws": 0}, "`draws` must be >= 1"),
        ({"t_min": 5, "t_max": 4}, "`t_max` must be >= t_min=5"),
        ({"batch_size": 0}, "`batch_size` must be >= 1"),
        ({"eval_draws": -1}, "`eval_draws` must be >= 0"),
    ],
)
def test_invalid_configs_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as exc:
        AdvDMConfig(**kwargs)
    assert field in str(exc.value)


def test_invalid_inputs_are_refused(tiny_unet):
    protector = AdvDM(tiny_unet, _config(steps=1))
    with pytest.raises(ConfigError, match=r"`images` must be in \[0, 1\]"):
        protector.protect(torch.full((1, 1, 8, 8), 1.5))
    with pytest.raises(ConfigError, match="`images` must be a non-empty"):
        protector.protect(torch.zeros(1, 8, 8))
    with pytest.raises(ConfigError, match="`seeds` must have one seed per image"):
        protector.protect(torch.zeros(2, 1, 8, 8), seeds=[1])
    with pytest.raises(ConfigError, match="`t_max` must be <= 999"):
        AdvDM(tiny_unet, AdvDMConfig(t_max=1000))
    with pytest.raises(ConfigError, match="class condition"):
        AdvDM(tiny_unet, AdvDMConfig(condition="a painting"))
