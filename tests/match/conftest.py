"""Fixtures for dmsec.match tests: drawn artworks, digits, copy transforms, tiny models, S3.

Every image is made in code (seeded): nothing is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto_server) on 127.0.0.1 and a free port."""
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto_server did not open its port within 20 s")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            mp.setenv(key, value)
        for key in (
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "DMSEC_S3_ENDPOINT_URL",
            "AWS_ENDPOINT_URL",
        ):
            mp.delenv(key, raising=False)
        yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket on the local S3 server; returns its name."""
    import boto3

    name = f"bank-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name
