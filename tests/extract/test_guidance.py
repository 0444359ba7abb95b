"""FineXtract's guidance: the limits that pin down the formula, on tiny random-init models."""

from __future__ import annotations

import copy

import pytest
import torch

from dmsec.extract import ExtractConfig, extract, extrapolated_noise, generate
from dmsec.extract.base import seeded_noise
from dmsec.models.lora import LoraSpec, adapters_disabled, add_lora
from dmsec.models.pair import FullPair, LoraPair
from dmsec.sampling import sample

# one batch, as in the direct-sampling reference: CPU kernels may round differently per batch size
CFG = dict(n_samples=6, steps=8, batch_size=6, seed=5)


@pytest.fixture()
def full_pair(tiny_unet):
    ft = copy.deepcopy(tiny_unet)
    with torch.no_grad():
        for p in ft.network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return FullPair(tiny_unet, ft)


@pytest.fixture()
def lora_models(tiny_unet):
    ft = copy.deepcopy(tiny_unet)
    add_lora(ft.network, LoraSpec(rank=4), init_random=True)
    return tiny_unet, ft


def _direct(handle, condition, n=6, steps=8, seed=5):
    x_T = seeded_noise(range(seed, seed + n), handle.sample_shape)
    return handle.decode(
        sample(
            handle.noise_predictor(handle.encode_condition([condition] * n)),
            x_T,
            handle.alphas_cumprod,
            steps=steps,
        )
    )


def test_formula_limits_are_exact():
    pre, ft = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(extrapolated_noise(pre, ft, w=1.0, k=0.0), ft)
    assert torch.equal(extrapolated_noise(pre, ft, w=0.0, k=0.0), pre)
    torch.testing.assert_close(
        extrapolated_noise(pre, ft, 3.0, -0.02), pre + 3 * (ft - pre) - 0.02 * pre
    )


def test_w1_reproduces_finetuned_samples_exactly(full_pair):
    got = generate(full_pair, ExtractConfig(w=1.0, k=0.0, **CFG))
    want = _direct(full_pair.finetuned, 11)
    assert torch.equal(got, want)


def test_w0_reproduces_pretrained_samples(full_pair):
    got = generate(full_pair, ExtractConfig(w=0.0, k=0.0, **CFG))
    want = _direct(full_pair.pretrained, None)  # ε_pre(x_t, ∅)
    assert torch.equal(got, want)
    assert not torch.equal(got, _direct(full_pair.finetuned, 11))


def test_lora_single_network_equals_two_networks(lora_models):
    base, ft = lora_models
    one_network = LoraPair(ft)
    # the two-network reference: a separate copy of the base with the adapter merged away
    plain_base = copy.deepcopy(ft)
    two_networks = FullPair(base, ft)
    cfg = ExtractConfig(w=5.0, k=0.0, **CFG)
    a, b = generate(one_network, cfg), generate(two_networks, cfg)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    with adapters_disabled(plain_base.network):
        assert torch.equal(_direct(plain_base, None), _direct(base, None))


def test_baseline_and_finextract_share_initial_noise(full_pair):
    cfg = ExtractConfig(w=1.0, k=0.0, guidance_scale=1.0, **CFG)
    # with w=1 and s=1 both reduce to the fine-tuned model's conditional prediction
    torch.testing.assert_close(
        generate(full_pair, cfg, "finextract"),
        generate(full_pair, cfg, "baseline"),
        atol=1e-5,
        rtol=0,
    )


def test_defaults_follow_pair_kind(full_pair, lora_models):
    assert ExtractConfig().resolved("full").w == 3.0 and ExtractConfig().resolved("full").k == -0.02
    assert ExtractConfig().resolved("lora").w == 5.0 and ExtractConfig().resolved("lora").k == 0.0


def test_extract_on_stable_diffusion_handle(tiny_sd):
    ft = copy.deepcopy(tiny_sd)
    add_lora(
        ft.network,
        LoraSpec(rank=4, target_modules=("to_q", "to_k", "to_v", "to_out.0")),
        init_random=True,
    )
    result = extract(
        LoraPair(ft),
        ExtractConfig(
            n_samples=4, steps=3, batch_size=4, n_groups=2, condition="a photo of sks dog"
        ),
    )
    assert result.samples.shape == (4, 3, 32, 32)
    assert 2 <= len(result.images) <= 4
    assert result.group_sizes.sum() == 4 and list(result.group_sizes) == sorted(
        result.group_sizes, reverse=True
    )


def test_extractors_by_name_share_the_seed_rule_and_report_every_groups_members(full_pair):
    from dmsec.extract import EXTRACTORS, DirectSampling, FineXtract, generation_seed

    assert EXTRACTORS.names() == ["baseline", "finextract"]
    assert (
        EXTRACTORS.get("finextract") is FineXtract and EXTRACTORS.get("baseline") is DirectSampling
    )
    config = ExtractConfig(w=1.5, k=0.0, n_groups=2, **CFG)
    result = extract(full_pair, config)
    assert torch.equal(result.samples, generate(full_pair, config, "finextract"))
    assert [len(m) for m in result.members] == result.group_sizes.tolist()
    assert sorted(int(i) for m in result.members for i in m) == list(range(CFG["n_samples"]))
    for rep, members, seed in zip(result.sample_indices, result.members, result.seeds, strict=True):
        assert rep in members and seed == generation_seed(CFG["seed"], rep) == CFG["seed"] + rep
