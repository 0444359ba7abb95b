"""Shared fixtures: the small zoo (built once per machine, cached by config hash) and tiny models."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not _has_cuda():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def small_zoo():
    """The small zoo: trained on first use (a few minutes), then reused from the cache."""
    from dmsec.zoo.build import build_zoo

    return build_zoo("small", progress=False)


@pytest.fixture()
def tiny_unet():
    """A random-init class-conditional UNet2DModel handle (mechanics only)."""
    from dmsec.models.unet2d import UNet2DHandle

    return UNet2DHandle.random(seed=0, channels=(8, 16), image_size=8).eval()


@pytest.fixture()
def tiny_sd():
    """A random-init Stable-Diffusion-architecture handle (mechanics only)."""
    from dmsec.models.stable_diffusion import tiny_stable_diffusion

    return tiny_stable_diffusion(seed=0)
