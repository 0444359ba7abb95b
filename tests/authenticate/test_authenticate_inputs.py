"""Decoded RGB arrays brought to a model's image size and channels."""

from __future__ import annotations

import numpy as np
import pytest

from dmsec.authenticate import model_image_shape, to_model_images
from dmsec.errors import ConfigError


def test_grey_pixel_model_gets_luma_at_its_sample_size(tiny_unet):
    rgb = np.zeros((40, 30, 3), dtype=np.float32)
    rgb[..., 1] = 1.0  # pure green: luma 0.587
    images = to_model_images(tiny_unet, [rgb, rgb])
    assert images.shape == (2, 1, 8, 8)
    assert np.allclose(images.numpy(), 0.587, atol=1e-5)


def test_latent_model_gets_rgb_at_its_vae_size(tiny_sd):
    assert model_image_shape(tiny_sd) == (3, 32, 32)
    images = to_model_images(tiny_sd, [np.random.default_rng(0).random((64, 64, 3))])
    assert images.shape == (1, 3, 32, 32) and images.min() >= 0 and images.max() <= 1


def test_non_rgb_input_is_refused_naming_it(tiny_unet):
    with pytest.raises(ConfigError, match=r"`pixels\[0\]`"):
        to_model_images(tiny_unet, [np.zeros((8, 8), dtype=np.float32)])
