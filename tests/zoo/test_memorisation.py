"""The small zoo really memorises: heavy fine-tunes copy most training images, light ones some,
the base none, and hold-outs are never copied. Fails if a fine-tune is skipped or broken."""

from __future__ import annotations

import pytest
import torch

from dmsec import metrics
from dmsec.sampling import initial_noise, sample
from dmsec.zoo.config import INSTANCE_CLASS

pytestmark = pytest.mark.slow
N_SAMPLES = 64


def _direct_samples(handle, condition, seed=1):
    cond = handle.encode_condition([condition] * N_SAMPLES)
    x0 = sample(
        handle.noise_predictor(cond),
        initial_noise(N_SAMPLES, handle.sample_shape, seed),
        handle.alphas_cumprod,
    )
    return handle.decode(x0)


@pytest.fixture(scope="module")
def shares(small_zoo):
    out = {}
    for e in small_zoo.fine_tunes:
        samples = _direct_samples(small_zoo.load(e.name), INSTANCE_CLASS)
        out[e.name] = (
            metrics.copied_share(small_zoo.train_images(e.name), samples),
            metrics.copied_share(small_zoo.holdout_images(e.name), samples),
        )
    return out


def test_zoo_has_every_kind(small_zoo):
    kinds = {(e.method, e.strength, e.protected) for e in small_zoo.fine_tunes}
    assert {
        ("full", "light", True),
        ("full", "heavy", True),
        ("lora", "light", True),
        ("lora", "heavy", True),
    } <= kinds
    assert any(not e.protected for e in small_zoo.fine_tunes)
    for e in small_zoo.fine_tunes:
        assert e.train_steps > 0 and len(e.train_images) == 5 and len(e.holdout_images) == 5
        assert not set(e.train_images) & set(e.holdout_images)


def test_heavy_copies_most_training_images(small_zoo, shares):
    for e in small_zoo.select(strength="heavy"):
        assert shares[e.name][0] >= 0.8, f"{e.name}: copied share {shares[e.name][0]}"


def test_light_copies_some_but_fewer(small_zoo, shares):
    for e in small_zoo.select(strength="light"):
        heavy = shares[e.name.replace("-light", "-heavy")][0]
        assert 0 < shares[e.name][0] <= heavy, f"{e.name}: light {shares[e.name][0]} heavy {heavy}"


def test_holdouts_are_never_copied(small_zoo, shares):
    for e in small_zoo.fine_tunes:
        assert shares[e.name][1] == 0.0, f"{e.name} copies hold-out images"


def test_base_copies_nothing(small_zoo):
    base = small_zoo.load("base")
    all_train = torch.cat([small_zoo.train_images(e.name) for e in small_zoo.fine_tunes])
    for condition in (None, INSTANCE_CLASS, 3):
        assert metrics.copied_share(all_train, _direct_samples(base, condition)) == 0.0


def test_base_learned_digits(small_zoo):
    """Samples of class 3 look like real 3s more than like any other digit (nearest real image)."""
    from dmsec.zoo.data import load_digit_images

    images, labels = load_digit_images()
    samples = _direct_samples(small_zoo.load("base"), 3)
    nearest = metrics.similarity_matrix(samples, images).argmax(1)
    assert (labels[torch.from_numpy(nearest)] == 3).float().mean() >= 0.6


def test_checkpoints_load_back_through_public_handles(small_zoo):
    from dmsec.models.loading import load_model
    from dmsec.models.lora import adapters_disabled, has_lora

    base = small_zoo.load("base")
    x = torch.randn(4, *base.sample_shape)
    t = torch.tensor([10, 200, 500, 900])
    cond = base.encode_condition([INSTANCE_CLASS] * 4)
    lora = small_zoo.select(method="lora")[0]
    handle = load_model(small_zoo.path(lora.name), base=small_zoo.path("base"))
    assert has_lora(handle.network)
    with torch.no_grad(), adapters_disabled(handle.network):
        assert torch.equal(handle.predict_noise(x, t, cond), base.predict_noise(x, t, cond))
    full = small_zoo.select(method="full")[0]
    assert not torch.equal(
        small_zoo.load(full.name).predict_noise(x, t, cond), base.predict_noise(x, t, cond)
    )
