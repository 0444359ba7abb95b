"""AdvDM on CUDA (skipped without a GPU): same draws as on the CPU, result inside the ball."""

from __future__ import annotations

import pytest
import torch

from dmsec.protect import AdvDM, AdvDMConfig


@pytest.mark.gpu
def test_cuda_protection_stays_in_the_ball_and_is_close_to_the_cpu_result(tiny_unet):
    x = torch.rand((4, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    config = AdvDMConfig(eps=8 / 255, steps=10, eval_draws=4)
    cpu = AdvDM(tiny_unet, config).protect(x)
    gpu = AdvDM(tiny_unet.to("cuda"), config).protect(x)
    assert gpu.images.device.type == "cpu"  # results come back on the CPU
    assert (gpu.images - x).abs().max() <= 8 / 255 + 1e-6
    # draws are made on the CPU, so only kernel rounding can flip a gradient sign
    assert (gpu.images == cpu.images).float().mean() > 0.9
