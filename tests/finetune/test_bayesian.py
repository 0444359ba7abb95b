"""Bayesian layers (arXiv 2405.19931): which weights, fresh samples, σ = 0, the KL term."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from dmsec.errors import ConfigError
from dmsec.finetune.bayesian import (
    PRESETS,
    SIGMA_MIN,
    BayesConfig,
    bayesian_targets,
    clamp_sigma_,
    gaussian_weights,
    kl_divergence,
    make_bayesian,
    posterior_mean,
    set_sigma,
    to_mean_network,
)
from dmsec.models.lora import LoraSpec, add_lora


def _forward(handle, network=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((3, *handle.sample_shape), generator=g)
    t = torch.tensor([5, 400, 900])
    net = network if network is not None else handle.network
    with torch.no_grad():
        return net(x, t, class_labels=torch.tensor([1, 10, 11])).sample


def test_presets_are_the_scripts_and_the_parser_defaults():
    assert (PRESETS["scripts"].sigma_init, PRESETS["scripts"].sigma_prior) == (0.01, 0.01)
    assert PRESETS["scripts"].kl_weight == 0.0
    assert (PRESETS["parser"].sigma_init, PRESETS["parser"].sigma_prior) == (0.02, 0.02)
    assert PRESETS["parser"].kl_weight == 0.2
    with pytest.raises(ConfigError, match="`preset`"):
        BayesConfig.preset("paper")
    with pytest.raises(ConfigError, match="`sigma_init`"):
        BayesConfig(sigma_init=0.0)
    with pytest.raises(ConfigError, match="`kl_weight`"):
        BayesConfig(kl_weight=-1.0)


def test_full_targets_are_block_linears_without_time_embedding(tiny_unet):
    names = bayesian_targets(tiny_unet.network, lora=False, skip=BayesConfig().skip)
    assert names, "the tiny UNet has attention Linears in its lowest blocks"
    modules = dict(tiny_unet.network.named_modules())
    for name in names:
        assert isinstance(modules[name], torch.nn.Linear)
        assert name.split(".")[0] in ("down_blocks", "mid_block", "up_blocks")
        assert "time_emb_proj" not in name and "time_embedding" not in name
    all_linears = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]
    assert any("time_emb_proj" in n for n in all_linears)  # present, but skipped


def test_full_targets_skip_cross_attention(tiny_sd):
    names = bayesian_targets(tiny_sd.network, lora=False, skip=BayesConfig().skip)
    assert any(".attn1." in n for n in names) and any(".ff." in n for n in names)
    assert not any(".attn2." in n for n in names)


def test_lora_targets_are_up_matrices_in_up_blocks(tiny_unet):
    network = add_lora(copy.deepcopy(tiny_unet.network), LoraSpec(rank=2, alpha=2.0))
    names = bayesian_targets(network, lora=True, skip=BayesConfig().lora_skip)
    assert names
    for name in names:
        assert name.startswith("up_blocks.") and ".lora_B." in name
        assert "time_emb_proj" not in name and "conv" not in name


def test_lora_targets_include_cross_attention_as_the_official_lora_script(tiny_sd):
    network = add_lora(copy.deepcopy(tiny_sd.network), LoraSpec(rank=2, alpha=2.0))
    names = make_bayesian(network, BayesConfig(), lora=True)
    assert any(".attn2." in n for n in names) and any(".attn1." in n for n in names)
    assert all(n.startswith("up_blocks.") and ".lora_B." in n for n in names)


def test_sigma_zero_gives_the_deterministic_mean_network(tiny_unet):
    reference = _forward(tiny_unet)
    network = copy.deepcopy(tiny_unet.network)
    make_bayesian(network, BayesConfig(sigma_init=0.05))
    # fresh weight noise on every forward: two calls differ, and differ from the mean network
    a, b = _forward(tiny_unet, network), _forward(tiny_unet, network)
    assert not torch.equal(a, b) and not torch.equal(a, reference)
    with posterior_mean(network):
        assert torch.equal(_forward(tiny_unet, network), reference)
    assert all(g.sampling for g in gaussian_weights(network))  # restored after the block
    set_sigma(network, 0.0)
    assert torch.equal(_forward(tiny_unet, network), reference)
    assert torch.equal(_forward(tiny_unet, network), reference)


def test_mean_network_is_an_ordinary_model(tiny_unet):
    network = copy.deepcopy(tiny_unet.network)
    make_bayesian(network, BayesConfig())
    with torch.no_grad():
        for g in gaussian_weights(network):
            g.sigma.fill_(0.3)  # σ must not leak into the saved weights
    to_mean_network(network)
    assert not gaussian_weights(network)
    assert network.state_dict().keys() == tiny_unet.network.state_dict().keys()
    assert torch.equal(_forward(tiny_unet, network), _forward(tiny_unet))


def test_kl_is_zero_when_posterior_equals_prior(tiny_unet):
    network = copy.deepcopy(tiny_unet.network)
    make_bayesian(network, BayesConfig(sigma_init=0.02, sigma_prior=0.02))
    assert kl_divergence(network).item() == 0.0
    lora = add_lora(copy.deepcopy(tiny_unet.network), LoraSpec(rank=2, alpha=2.0))
    make_bayesian(lora, BayesConfig(), lora=True)  # μ = B = 0 = prior mean
    assert kl_divergence(lora).item() == 0.0


def test_kl_is_the_official_kl_prior_to_posterior(tiny_unet):
    network = copy.deepcopy(tiny_unet.network)
    make_bayesian(network, BayesConfig(sigma_init=0.02, sigma_prior=0.01))
    module = dict(network.named_modules())[bayesian_targets(network, False, BayesConfig().skip)[0]]
    with torch.no_grad():
        module.parametrizations.weight.original.add_(0.01)
    expected = torch.zeros(())
    for m in network.modules():
        if not hasattr(m, "parametrizations"):
            continue
        for plist in m.parametrizations.values():
            g = plist[0]
            prior = Normal(g.prior_mean, torch.full_like(g.prior_mean, g.prior_sigma))
            posterior = Normal(plist.original.detach(), g.sigma.detach())
            expected += torch_kl(prior, posterior).sum()
    got = kl_divergence(network)
    assert got.item() > 0
    assert torch.allclose(got.detach(), expected, rtol=1e-4)
    got.backward()  # differentiable in μ and σ
    assert module.parametrizations.weight.original.grad is not None


def test_sigma_is_clamped_at_its_floor(tiny_unet):
    network = copy.deepcopy(tiny_unet.network)
    make_bayesian(network, BayesConfig())
    with torch.no_grad():
        gaussian_weights(network)[0].sigma.fill_(-1.0)
    clamp_sigma_(network)
    assert min(float(g.sigma.detach().min()) for g in gaussian_weights(network)) >= SIGMA_MIN


def test_a_network_without_targets_is_refused():
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(ConfigError, match="`network` has no Linear"):
        make_bayesian(network, BayesConfig())
