"""Shared fixtures: the small zoo (built once per machine, cached by config hash) and tiny models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def art_base() -> Path:
    """The art zoo's base (a miniature Stable Diffusion folder, 32x32 colour) where this machine
    has trained it (`make art-zoo`, or a build of it past its base); else the test is skipped.
    The art-small base cannot stand in: its factor-4 VAE gives the protected 32x32 emoji back at
    0.75-0.88 art similarity, under the copy threshold 0.9495, so no fine-tune of it can copy."""
    from dmsec.zoo.art_build import cached_art_base

    base = cached_art_base("art")
    if base is None:
        pytest.skip("the art zoo's base is not trained here: `make art-zoo` (its base: ~2 h)")
    return base


@pytest.fixture()
def tiny_unet():
    """A random-init class-conditional UNet2DModel handle (mechanics only)."""
    from dmsec.models.unet2d import UNet2DHandle

    return UNet2DHandle.random(seed=0, channels=(8, 16), image_size=8).eval()


@pytest.fixture()
def training_images(tmp_path):
    """A factory: `n` seeded random images (`channels` x `side` x `side`) saved as PNGs in
    `<tmp>/images`, the folder a fine-tune command reads; returns the folder."""
    from dmsec.images import save_png

    def write(channels: int, side: int, n: int = 3, seed: int = 0) -> Path:
        folder = tmp_path / "images"
        g = torch.Generator().manual_seed(seed)
        for i in range(n):
            save_png(torch.rand(channels, side, side, generator=g), folder / f"train_{i}.png")
        return folder

    return write


@pytest.fixture()
def tiny_sd():
    """A random-init Stable-Diffusion-architecture handle (mechanics only)."""
    from dmsec.models.stable_diffusion import tiny_stable_diffusion

    return tiny_stable_diffusion(seed=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local S3-compatible server (`moto_server`) on 127.0.0.1 and a free port, for the
    session, with dummy AWS credentials and no endpoint variables leaking in."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.fail("moto_server is not installed (the dev extra has moto[server])")
    port = _free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not open its port within 20 s")
            time.sleep(0.1)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "DMSEC_S3_ENDPOINT_URL",
                    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):  # fmt: skip
            mp.delenv(key, raising=False)
        yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def run_notebook():
    """`run(path, cwd, timeout=600)`: execute notebook `path` with the kernel "python3" (the
    interpreter running the tests, which has ipykernel) in folder `cwd`; returns it executed."""
    import nbformat
    from nbclient import NotebookClient

    def run(path: Path, cwd: Path, timeout: int = 600):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()  # fmt: skip
        return nb

    return run
