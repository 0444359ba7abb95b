"""Fixtures for dmsec.protect tests: a saved random-init tiny UNet and folders of image files.

Every model and image is made in code (seeded); nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # for `protect_images`, in any import mode

from protect_images import write_images  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init class-conditional 8x8 grey UNet saved as a diffusers folder."""
    from dmsec.models.unet2d import UNet2DHandle

    folder = tmp_path_factory.mktemp("tiny-model")
    UNet2DHandle.random(seed=0, channels=(8, 16), image_size=8).save(folder)
    return folder


@pytest.fixture()
def image_folder(tmp_path) -> Path:
    """Four good images (one RGB, one in a subfolder, one JPEG), a corrupt PNG and a text file."""
    folder = tmp_path / "in"
    write_images(folder, ["a.png", "b.png", "sub/c.png", "d_rgb.png"])
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(folder / "e.jpg", quality=95)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "notes.txt").write_text("not an image")
    return folder
