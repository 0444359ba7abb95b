"""Fixtures for dmsec.match tests: drawn artworks, digits, copy transforms, tiny models, S3.

Every image is made in code (seeded): nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # for `artwork_factory`, in any import mode

from artwork_factory import digit_artwork, draw_artwork  # noqa: E402


@pytest.fixture(scope="session")
def artworks() -> list[Image.Image]:
    """Eight drawn artworks."""
    return [draw_artwork(seed) for seed in range(8)]


@pytest.fixture(scope="session")
def digit_artworks() -> list[Image.Image]:
    """Ten digits, one of each class, upsampled to 256x256."""
    from dmsec.zoo.data import load_digit_images

    _, labels = load_digit_images()
    firsts = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in range(10)]
    return [digit_artwork(i) for i in firsts]


def _save_tiny_model(kind: str, root: Path) -> Path:
    import torch
    from transformers import (
        BitImageProcessor,
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        Dinov2Config,
        Dinov2Model,
    )

    torch.manual_seed(0)
    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=64,
        patch_size=16,
    )
    crop = {"height": 64, "width": 64}
    path = root / kind
    if kind == "dinov2":
        Dinov2Model(Dinov2Config(**common)).save_pretrained(path)
        BitImageProcessor(size={"shortest_edge": 64}, crop_size=crop).save_pretrained(path)
    else:
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**common, projection_dim=24))
        model.save_pretrained(path)
        CLIPImageProcessor(size={"shortest_edge": 64}, crop_size=crop).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-init tiny DINOv2 and CLIP vision models saved locally (no download)."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {kind: _save_tiny_model(kind, root) for kind in ("dinov2", "clip")}


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket on the local S3 server; returns its name."""
    import boto3

    name = f"bank-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name
