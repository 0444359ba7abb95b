"""CGI-DM's block-wise masking: which entries of x_0 are kept and which must be recovered.

Paper: "CGI-DM: Digital Copyright Authentication for Diffusion Models via Contrasting Gradient
Inversion" (Wu et al., CVPR 2024, arXiv 2403.11162), Sec. 4.1 and the official code (Revelio,
`Extractor.py`): in every `block`x`block` tile of the spatial grid keep the top-left and the
bottom-right `cell`x`cell` sub-blocks and remove the rest. With the defaults (4, 2) that is a
checkerboard of 2x2 cells and exactly half of every channel survives. The mask acts on model
space: VAE latents for latent models (4x64x64 for SD 1.x), pixels for pixel-space models.

Known limit: grids whose height or width is not a multiple of `block` are tiled from the top-left
corner, so the last partial tile keeps its own top-left part only.
"""

from __future__ import annotations

import torch

from dmsec.errors import ConfigError


def validate_block_pattern(block: int, cell: int) -> None:
    """Raise `ConfigError` unless 2 <= block and 1 <= cell < block."""
    if block < 2:
        raise ConfigError(f"`block` must be >= 2; got {block}")
    if not 1 <= cell < block:
        raise ConfigError(f"`cell` must be in [1, block - 1] = [1, {block - 1}]; got {cell}")


def block_keep_mask(
    sample_shape: tuple[int, ...],
    block: int = 4,
    cell: int = 2,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Boolean keep-mask of shape `sample_shape` (C, H, W): True = kept, False = to recover.

    Entry (c, i, j) is kept when (i mod block, j mod block) lies in the top-left or bottom-right
    `cell`x`cell` sub-block of its tile; the pattern is the same for every channel.
    """
    validate_block_pattern(block, cell)
    if len(sample_shape) != 3:
        raise ConfigError(f"`sample_shape` must be (C, H, W); got {tuple(sample_shape)}")
    channels, height, width = sample_shape
    rows = torch.arange(height, device=device) % block
    cols = torch.arange(width, device=device) % block
    top_left = (rows[:, None] < cell) & (cols[None, :] < cell)
    bottom_right = (rows[:, None] >= block - cell) & (cols[None, :] >= block - cell)
    keep = top_left | bottom_right
    return keep.expand(channels, height, width).clone()


def mask_out(x0: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The masked input: kept entries of `x0` as they are, removed entries set to 0.

    0 is the centre of model space (mid-grey for pixels in [-1, 1], the prior mean for latents),
    as in the official code, which multiplies the latent by the mask.
    """
    return torch.where(keep, x0, torch.zeros((), dtype=x0.dtype, device=x0.device))
