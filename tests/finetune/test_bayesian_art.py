"""The Bayesian layer rule (arXiv 2405.19931) on the art zoo's UNet2DConditionModel.

Expected sets are built independently of `bayesian_targets`: from diffusers' own transformer
block modules (`BasicTransformerBlock.attn1` / `.ff`), not from module-name patterns.
"""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock

from dmsec.finetune.bayesian import (
    BayesConfig,
    bayesian_share,
    bayesian_targets,
    gaussian_weights,
    make_bayesian,
)
from dmsec.finetune.vanilla import TrainConfig, train
from dmsec.models.lora import LoraSpec, add_lora
from dmsec.zoo.art_build import LORA_TARGETS
from dmsec.zoo.art_model import ArtModelConfig, build_unet


@pytest.fixture(scope="module")
def art_unet():
    """The full art zoo's UNet architecture, random init (only the structure matters here)."""
    return build_unet(ArtModelConfig(), seed=0)


def _block_linears(network: torch.nn.Module, part: str) -> set[str]:
    """Names of the Linears under `<transformer block>.<part>` for every transformer block."""
    out = set()
    for name, module in network.named_modules():
        if isinstance(module, BasicTransformerBlock):
            for sub, m in getattr(module, part).named_modules():
                if isinstance(m, torch.nn.Linear):
                    out.add(f"{name}.{part}.{sub}")
    return out


def test_art_rule_is_self_attention_and_feed_forward_of_every_transformer_block(art_unet):
    names = set(bayesian_targets(art_unet, lora=False, skip=BayesConfig().skip))
    attn1, ff = _block_linears(art_unet, "attn1"), _block_linears(art_unet, "ff")
    n_blocks = sum(isinstance(m, BasicTransformerBlock) for m in art_unet.modules())
    assert n_blocks == 7  # down 1-2, mid, up 0-1 (two each): every one of them covered
    assert len(attn1) == 4 * n_blocks and len(ff) == 2 * n_blocks
    assert names == attn1 | ff
    # cross-attention and the resnets' time projections are Linear but deterministic
    assert _block_linears(art_unet, "attn2") and not names & _block_linears(art_unet, "attn2")
    assert not any("time_emb" in n for n in names)
    # SD 1.x layout: proj_in / proj_out are 1x1 convolutions, so the Linear rule leaves them
    modules = dict(art_unet.named_modules())
    projections = [n for n in modules if n.endswith((".proj_in", ".proj_out"))]
    assert projections and all(isinstance(modules[n], torch.nn.Conv2d) for n in projections)


def test_art_bayesian_share_matches_the_parametrized_weights(art_unet):
    n_bayes, n_all = bayesian_share(art_unet, BayesConfig())
    blocks = [m for m in art_unet.modules() if isinstance(m, BasicTransformerBlock)]
    expected = sum(
        p.numel()
        for b in blocks
        for part in (b.attn1, b.ff)
        for m in part.modules()
        if isinstance(m, torch.nn.Linear)
        for p in m.parameters(recurse=False)
    )
    assert n_bayes == expected
    assert n_all == sum(p.numel() for p in art_unet.parameters())
    assert round(n_bayes / n_all, 3) == 0.303  # the share the module docstring states
    network = copy.deepcopy(art_unet)
    make_bayesian(network, BayesConfig())
    assert sum(g.sigma.numel() for g in gaussian_weights(network)) == n_bayes
    assert bayesian_share(art_unet, BayesConfig()) == (n_bayes, n_all)  # the probe left it as is


def test_linear_projections_are_covered_in_the_sd2_layout():
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
        layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
        attention_head_dim=4, norm_num_groups=8, use_linear_projection=True,
    )  # fmt: skip
    names = set(bayesian_targets(unet, lora=False, skip=BayesConfig().skip))
    projections = {n for n, _ in unet.named_modules() if n.endswith((".proj_in", ".proj_out"))}
    assert projections and projections <= names
    assert not any(".attn2." in n for n in names)


def test_art_lora_rule_is_the_up_blocks_linear_up_matrices(art_unet):
    spec = LoraSpec(rank=2, alpha=2.0, target_modules=LORA_TARGETS)
    network = add_lora(copy.deepcopy(art_unet), spec)
    names = set(make_bayesian(network, BayesConfig(), lora=True))
    modules = dict(network.named_modules())
    expected = {
        n
        for n, m in modules.items()
        if ".lora_B." in n and n.startswith("up_blocks.") and isinstance(m, torch.nn.Linear)
    }
    assert names == expected
    assert any(".attn1." in n for n in names) and any(".attn2." in n for n in names)
    assert any(".ff." in n for n in names)
    # the conv adapters on proj_in/proj_out and every down/mid adapter stay deterministic
    assert any(".proj_in.lora_B." in n for n in modules) and not any(".proj_in." in n for n in names)  # fmt: skip
    n_lora_up = sum(g.sigma.numel() for g in gaussian_weights(network))
    assert n_lora_up == sum(modules[n].weight.numel() for n in names)
    # prior mean 0: a fresh adapter's B is 0, so the mean network adds nothing to the base
    assert all(float(g.prior_mean.abs().max()) == 0.0 for g in gaussian_weights(network))


def test_bayesian_dreambooth_with_prior_preservation_ends_an_ordinary_model(tiny_sd):
    handle = copy.deepcopy(tiny_sd)
    keys = set(handle.network.state_dict())
    images = torch.rand(2, 3, 32, 32)
    config = TrainConfig(steps=2, batch_size=2, lr=1e-3, bayes=BayesConfig(),
                         train_text_encoder=True, prior_weight=1.0)  # fmt: skip
    text_before = copy.deepcopy(handle.text_encoder.state_dict())
    train(handle, images, ["a photo of sks dog"] * 2, config, progress=False,
          prior_images=torch.rand(3, 3, 32, 32), prior_conditions=["a photo of dog"] * 3)  # fmt: skip
    assert not gaussian_weights(handle.network)
    assert set(handle.network.state_dict()) == keys  # the saved layout is the vanilla one
    moved = [
        not torch.equal(v, handle.text_encoder.state_dict()[k]) for k, v in text_before.items()
    ]
    assert any(moved)  # DreamBooth trained the text encoder beside the Bayesian UNet
