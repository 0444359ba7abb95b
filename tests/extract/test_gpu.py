"""GPU paths of FineXtract (skipped without CUDA): same answer as the CPU, half precision runs."""

from __future__ import annotations

import copy

import pytest
import torch

from dmsec.extract import ExtractConfig, generate
from dmsec.models.lora import LoraSpec, add_lora
from dmsec.models.pair import LoraPair

pytestmark = pytest.mark.gpu


def _pair(tiny_unet):
    ft = copy.deepcopy(tiny_unet)
    add_lora(ft.network, LoraSpec(rank=4), init_random=True)
    return ft


def test_cuda_matches_cpu(tiny_unet):
    ft = _pair(tiny_unet)
    cfg = ExtractConfig(w=2.0, k=0.0, n_samples=8, steps=10, batch_size=8)
    cpu = generate(LoraPair(ft), cfg)
    gpu = generate(LoraPair(copy.deepcopy(ft).to("cuda")), cfg)
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs(tiny_unet, dtype):
    ft = _pair(tiny_unet).to("cuda", dtype)
    out = generate(LoraPair(ft), ExtractConfig(w=2.0, k=0.0, n_samples=8, steps=10))
    assert out.shape == (8, 1, 8, 8) and torch.isfinite(out).all()
