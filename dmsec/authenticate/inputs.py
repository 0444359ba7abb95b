"""Images to authenticate, brought to the size and channels a model handle encodes.

The scan and the CLI hold decoded RGB arrays (``(H, W, 3)`` float32 in [0, 1], the canonical form
of `dmsec.images`); CGI-DM needs a (B, C, H', W') batch at the model's own image size.
Resizing is bilinear with antialiasing; grey models get the ITU-R 601 luma of the RGB image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dmsec.errors import ConfigError
from dmsec.models.base import DiffusionModel


def model_image_shape(handle: DiffusionModel) -> tuple[int, int, int]:
    """(C, H, W) of the images `handle` encodes: its sample shape, or its VAE's output size."""
    channels, height, width = handle.sample_shape
    vae = getattr(handle, "vae", None)
    if vae is None:
        return channels, height, width
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return int(vae.config.in_channels), height * factor, width * factor


def to_model_images(handle: DiffusionModel, pixels: Sequence[np.ndarray]) -> torch.Tensor:
    """RGB arrays (H, W, 3) in [0, 1] -> (B, C, H', W') float32 in [0, 1] at the model's size."""
    channels, height, width = model_image_shape(handle)
    out = []
    for i, arr in enumerate(pixels):
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ConfigError(f"`pixels[{i}]` must be an (H, W, 3) RGB array; got {arr.shape}")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]
        if channels == 1:
            x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        if tuple(x.shape[-2:]) != (height, width):
            x = F.interpolate(
                x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
            )
        out.append(x.clamp(0, 1))
    if not out:
        raise ConfigError("`pixels` is empty")
    return torch.cat(out)
