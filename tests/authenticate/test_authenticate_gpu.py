"""CGI-DM on CUDA: same evidence as on the CPU (tiny random-init models; skipped without a GPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from dmsec.authenticate import CgiDmConfig, authenticate, block_keep_mask
from dmsec.authenticate import contrasting_gradient_inversion as invert
from dmsec.models.lora import LoraSpec, add_lora
from dmsec.models.pair import FullPair, LoraPair
from dmsec.models.unet2d import UNet2DHandle

pytestmark = pytest.mark.gpu


def _images(n, shape):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(0))


def test_full_pair_on_cuda_matches_cpu(tiny_unet):
    other = UNet2DHandle.random(seed=1, channels=(8, 16), image_size=8).eval()
    config = CgiDmConfig(steps=5, baseline_draws=4)
    images = _images(3, (1, 8, 8))
    cpu = authenticate(FullPair(copy.deepcopy(tiny_unet), copy.deepcopy(other)), images, config)
    gpu_pair = FullPair(tiny_unet.to("cuda"), other.to("cuda"))
    gpu = authenticate(gpu_pair, images.cuda(), config)
    for a, b in zip(cpu, gpu, strict=True):
        assert b.recovered_image.device.type == "cpu"
        assert torch.allclose(a.recovered_image, b.recovered_image, atol=1e-3)
        assert b.baseline_gap == pytest.approx(a.baseline_gap, abs=1e-4)


def test_lora_and_sd_pairs_on_cuda_keep_kept_entries_and_the_ball(tiny_unet, tiny_sd):
    add_lora(tiny_unet.network, LoraSpec(rank=4), init_random=True)
    add_lora(tiny_sd.network, LoraSpec(rank=2), init_random=True)
    for handle, cond, image_shape in (
        (tiny_unet, 11, (1, 8, 8)),
        (tiny_sd, "sks dog", (3, 32, 32)),
    ):
        pair = LoraPair(handle.to("cuda"))
        config = CgiDmConfig(steps=4).resolved(pair)
        x0 = pair.pretrained.encode_images(_images(2, image_shape).cuda())
        c_pre, c_ft = pair.encode_pre([cond] * 2), pair.encode_ft([cond] * 2)
        result = invert(pair, x0, c_pre, c_ft, config)
        keep = block_keep_mask(pair.sample_shape).cuda()
        assert torch.equal(result.recovered[:, keep], x0[:, keep].float())
        delta = (result.recovered - result.masked).flatten(1).norm(dim=1)
        assert (delta <= config.eps * (1 + 1e-5)).all() and (delta > 0).all()
