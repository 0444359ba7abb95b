"""Tensor <-> PNG conversion for images dmsec itself produces (zoo sets, extracted candidates).

Untrusted images (hub files, user uploads) are decoded by `dmsec.match` with pixel limits instead.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, C) uint8."""
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def png_bytes(image: torch.Tensor) -> bytes:
    """Encode one (C, H, W) image in [0, 1] as PNG."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))
    return path


def load_png(path: str | Path, grey: bool = True) -> torch.Tensor:
    """A trusted PNG -> (C, H, W) float in [0, 1]."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


def load_pngs(paths: Sequence[str | Path], grey: bool = True) -> torch.Tensor:
    return torch.stack([load_png(p, grey) for p in paths])


def image_grid(images: torch.Tensor, ncol: int = 8, pad: int = 1) -> torch.Tensor:
    """Tile (B, C, H, W) images into one (C, H', W') grid with white padding."""
    b, c, h, w = images.shape
    nrow = (b + ncol - 1) // ncol
    grid = torch.ones(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(b):
        r, k = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, y : y + h, x : x + w] = images[i].float().cpu()
    return grid
