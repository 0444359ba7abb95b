"""Image files made in code for dmsec.protect tests (seeded, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_images(folder: Path, names: list[str], size: int = 8, seed: int = 0) -> None:
    """Random grey PNGs (or RGB ones for names containing "rgb", 20x20 to force a resize)."""
    rng = np.random.default_rng(seed)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if "rgb" in name:
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path)
        else:
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
