"""The trainer: vanilla stays vanilla, Bayesian trains μ and σ, a resumed run continues exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from dmsec.errors import ConfigError
from dmsec.finetune.bayesian import BayesConfig, gaussian_weights
from dmsec.finetune.corruption import diversity, fidelity, fidelity_dip, high_frequency_energy
from dmsec.finetune.vanilla import FewShotTrainer, TrainConfig, train
from dmsec.metrics import ART
from dmsec.models.lora import LoraSpec


@pytest.fixture()
def images():
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _state(network):
    return {k: v.clone() for k, v in network.state_dict().items()}


def test_bayesian_training_moves_mu_and_sigma_and_ends_ordinary(tiny_unet, images):
    handle = copy.deepcopy(tiny_unet)
    before = _state(handle.network)
    trainer = FewShotTrainer(
        handle, images, [11] * 3, TrainConfig(steps=3, batch_size=4, lr=1e-2, bayes=BayesConfig())
    )
    sigmas = [g.sigma.detach().clone() for g in gaussian_weights(handle.network)]
    for _ in range(3):
        trainer.train_step()
    after = [g.sigma.detach() for g in gaussian_weights(handle.network)]
    assert any(not torch.equal(a, b) for a, b in zip(sigmas, after, strict=True))
    trainer.finish()
    state = handle.network.state_dict()
    assert state.keys() == before.keys()  # the mean network: no σ, no parametrization keys
    assert any(not torch.equal(state[k], before[k]) for k in state)


def test_kl_weight_enters_the_objective(tiny_unet, images):
    config = TrainConfig(steps=2, batch_size=4, bayes=BayesConfig(sigma_init=0.02, kl_weight=0.2))
    trainer = FewShotTrainer(copy.deepcopy(tiny_unet), images, [11] * 3, config)
    trainer.train_step()
    trainer.train_step()
    assert trainer.last_kl > 0  # μ and σ left the prior after the first step


@pytest.mark.parametrize("lora", [False, True])
def test_resume_continues_bit_for_bit(tiny_unet, images, tmp_path, lora):
    spec = LoraSpec(rank=2, alpha=2.0) if lora else None
    config = TrainConfig(steps=5, batch_size=4, lr=1e-3, lora=spec, bayes=BayesConfig())
    straight = FewShotTrainer(copy.deepcopy(tiny_unet), images, [11] * 3, config)
    for _ in range(5):
        straight.train_step()
    first = FewShotTrainer(copy.deepcopy(tiny_unet), images, [11] * 3, config)
    for _ in range(3):
        first.train_step()
    first.save_state(tmp_path)
    torch.manual_seed(1234)  # whatever happened in between must not matter
    resumed = FewShotTrainer(copy.deepcopy(tiny_unet), images, [11] * 3, config)
    assert resumed.load_state(tmp_path)["step"] == 3
    for _ in range(2):
        resumed.train_step()
    assert resumed.losses == straight.losses
    a, b = _state(straight.model.network), _state(resumed.model.network)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_workers_split_the_batch(tiny_unet, images):
    with pytest.raises(ConfigError, match="`batch_size`"):
        FewShotTrainer(
            tiny_unet, images, [11] * 3, TrainConfig(steps=1, batch_size=5), world_size=2
        )
    trainer = FewShotTrainer(
        copy.deepcopy(tiny_unet), images, [11] * 3, TrainConfig(steps=1, batch_size=4),
        rank=1, world_size=2,
    )  # fmt: skip
    assert trainer.local_batch == 2


def test_lora_base_weights_stay_identical(tiny_unet, images):
    handle = copy.deepcopy(tiny_unet)
    before = _state(tiny_unet.network)
    config = TrainConfig(steps=2, batch_size=4, lr=1e-2, lora=LoraSpec(rank=2, alpha=2.0),
                         bayes=BayesConfig())  # fmt: skip
    train(handle, images, [11] * 3, config, progress=False)
    state = handle.network.state_dict()
    for key, value in before.items():
        base_key = key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(state.get(key, state.get(base_key)), value)


def test_corruption_measures():
    assert fidelity_dip([0.5, 0.9, 0.7, 0.95, 0.8]) == pytest.approx(0.2)  # 0.9 -> 0.7
    assert fidelity_dip([0.1, 0.2, 0.3]) == 0.0
    smooth = torch.linspace(0, 1, 16).repeat(4, 1, 16, 1)
    noisy = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert high_frequency_energy(noisy) > 5 * high_frequency_energy(smooth)
    assert diversity(noisy) > diversity(smooth[:1].repeat(4, 1, 1, 1))


def test_corruption_measures_in_the_art_space_see_colour():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    swapped = x[:, [2, 1, 0]]  # same green, red and blue exchanged
    assert fidelity(x, x, ART) == pytest.approx(1.0, abs=1e-5)
    # the grey digit space hardly sees a colour swap; the art space (RGB) does
    assert fidelity(swapped, x, ART) < fidelity(swapped, x) - 0.2
    assert diversity(x, ART) > 0.5
