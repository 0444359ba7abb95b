"""The shared DDIM/DDPM loop."""

from __future__ import annotations

import torch

from dmsec.models.schedule import alphas_cumprod
from dmsec.sampling import ddim_timesteps, initial_noise, sample


def test_timesteps_descend_and_cover():
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 980 and ts[-1] == 0 and len(ts) == 50
    assert torch.all(ts[:-1] > ts[1:])


def test_oracle_noise_recovers_x0_exactly():
    """With the true ε (known x_0), deterministic DDIM lands on x_0."""
    a = alphas_cumprod()
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    x_T = initial_noise(3, (1, 8, 8), seed=0)

    def oracle(x_t, t):
        a_t = a[t].view(-1, 1, 1, 1)
        return (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()

    out = sample(oracle, a[-1].sqrt() * x0 + (1 - a[-1]).sqrt() * x_T, a, steps=20)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_deterministic_and_seeded():
    a = alphas_cumprod()
    x_T = initial_noise(2, (1, 4, 4), seed=3)
    eps = lambda x, t: 0.1 * x  # noqa: E731
    assert torch.equal(sample(eps, x_T, a, steps=10), sample(eps, x_T, a, steps=10))
    s1 = sample(eps, x_T, a, steps=10, eta=1.0, seed=1)
    assert torch.equal(s1, sample(eps, x_T, a, steps=10, eta=1.0, seed=1))
    assert not torch.equal(s1, sample(eps, x_T, a, steps=10, eta=1.0, seed=2))
