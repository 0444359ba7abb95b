"""Block-wise masking: the official pattern, half kept, validation naming the field."""

from __future__ import annotations

import pytest
import torch

from dmsec.authenticate.masking import block_keep_mask, mask_out
from dmsec.errors import ConfigError


def test_keeps_top_left_and_bottom_right_cells_of_every_block():
    keep = block_keep_mask((4, 8, 8))
    tile = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    expected = tile.repeat(2, 2)
    assert keep.shape == (4, 8, 8)
    for c in range(4):
        assert torch.equal(keep[c], expected)
    assert keep.float().mean() == 0.5


def test_sd_latent_mask_removes_the_papers_8192_entries():
    assert int((~block_keep_mask((4, 64, 64))).sum()) == 8192


def test_mask_out_zeroes_removed_entries_only():
    x = torch.randn(3, 1, 8, 8)
    keep = block_keep_mask((1, 8, 8))
    masked = mask_out(x, keep)
    assert torch.equal(masked[:, keep], x[:, keep])
    assert masked[:, ~keep].abs().sum() == 0


@pytest.mark.parametrize(
    ("block", "cell", "field"), [(1, 1, "`block`"), (4, 0, "`cell`"), (4, 4, "`cell`")]
)
def test_bad_pattern_is_refused_naming_the_field(block, cell, field):
    with pytest.raises(ConfigError, match=field):
        block_keep_mask((1, 8, 8), block=block, cell=cell)
