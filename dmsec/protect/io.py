"""Image files in and out of a protection job: listing, safe decoding, writing PNGs.

Inputs are untrusted (an artist's upload folder, a platform's bucket), so they are decoded with
`dmsec.images` (allow-listed formats, pixel and byte limits checked before decoding, EXIF
orientation applied, alpha composited over white). Outputs are always lossless PNG: a lossy
format would blur away part of the perturbation.

Known limit: images are protected at the model's input size (the zoo's 16x16 grey, a Stable
Diffusion model's 512x512 RGB, ...), so an image of another size is resized (bilinear,
antialiased) first and its protected version is written at the model's size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dmsec.images import DecodeLimits, decode_untrusted_image, png_bytes
from dmsec.models.base import DiffusionModel

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def list_images(folder: str | Path) -> list[str]:
    """Image files under `folder` (recursively, by suffix; hidden entries skipped), as sorted
    POSIX paths relative to `folder`. Symlinks are not followed."""
    root = Path(folder)
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.is_symlink():
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            out.append(rel.as_posix())
    return sorted(out)


def output_name(source: str) -> str:
    """Where the protected version of `source` (relative path) goes: a PNG beside its twin name.

    `a/b.png` -> `a/b.png`; any other suffix is kept and `.png` appended (`a/b.jpg` ->
    `a/b.jpg.png`), so two sources never share an output unless one is literally `x.jpg.png`.
    """
    return source if source.lower().endswith(".png") else f"{source}.png"


def model_image_shape(model: DiffusionModel) -> tuple[int, int, int]:
    """(C, H, W) of the images `model` encodes: its sample shape, or the VAE's image size."""
    channels, height, width = model.sample_shape
    vae = getattr(model, "vae", None)
    if vae is None:
        return int(channels), int(height), int(width)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return int(vae.config.in_channels), int(height) * factor, int(width) * factor


@dataclass(frozen=True)
class InputImage:
    """A decoded input at the model's image shape, with what the manifest records about it."""

    pixels: torch.Tensor  # (C, H, W) float in [0, 1]
    sha256: str  # of the file's bytes
    width: int  # as decoded, before any resize
    height: int
    resized: bool


def to_model_image(rgb: np.ndarray, shape: tuple[int, int, int]) -> tuple[torch.Tensor, bool]:
    """A decoded (H, W, 3) float array -> (C, H', W') at `shape` (grey by ITU-R 601 luma if C=1)."""
    channels, height, width = shape
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    if channels == 1:
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    resized = tuple(x.shape[-2:]) != (height, width)
    if resized:
        x = F.interpolate(
            x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
        )
    return x[0].clamp(0, 1), resized


def read_image(
    path: str | Path, shape: tuple[int, int, int], limits: DecodeLimits | None = None
) -> InputImage:
    """Decode an untrusted file under `limits`; raises `ImageDecodeError` naming it and why."""
    decoded = decode_untrusted_image(str(path), 0, limits or DecodeLimits())
    pixels, resized = to_model_image(decoded.pixels, shape)
    return InputImage(pixels, decoded.sha256, decoded.width, decoded.height, resized)


def write_png(image: torch.Tensor, path: str | Path) -> str:
    """Write `image` as PNG (parents created, written atomically); returns the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = png_bytes(image)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def image_seed(seed: int, sha256: str) -> int:
    """An image's PGD seed from the job seed and its content hash: independent of file order,
    batching and worker, so a rerun reproduces each image exactly."""
    return (seed * 1_000_003 + int(sha256[:12], 16)) % 2**62
