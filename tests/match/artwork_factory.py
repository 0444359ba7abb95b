"""Images made in code for dmsec.match tests (seeded; nothing is downloaded)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

ART_SIZE = 256


def draw_artwork(seed: int, size: int = ART_SIZE) -> Image.Image:
    """A 256x256 'artwork': gradient with a light noise texture, 8 shapes and a caption."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    c0, c1, angle = rng.random(3), rng.random(3), rng.random() * np.pi
    t = (np.cos(angle) * xx + np.sin(angle) * yy) / 1.5
    bg = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    bg = bg + rng.normal(0, 0.03, bg.shape)
    im = Image.fromarray((np.clip(bg, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(8):
        x0, y0 = (int(v) for v in rng.integers(0, size - 56, 2))
        w, h = (int(v) for v in rng.integers(30, 120, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + w, y0 + h], fill=colour)
    position = (int(rng.integers(10, 150)), int(rng.integers(10, 200)))
    draw.text(position, f"art {seed}", fill=(255, 255, 255), font_size=28)
    return im


def digit_artwork(index: int, size: int = ART_SIZE) -> Image.Image:
    """scikit-learn digit `index` (the zoo's data) upsampled to a 256x256 grey image."""
    from dmsec.zoo.data import load_digit_images

    images, _ = load_digit_images()
    pixels = (images[index, 0].numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(pixels).resize((size, size), Image.BICUBIC)


def jpeg_bytes(im: Image.Image, quality: int = 70) -> bytes:
    """`im` encoded as JPEG."""
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(im: Image.Image) -> bytes:
    """`im` encoded as PNG."""
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _crop(im: Image.Image, pixels: int) -> Image.Image:
    w, h = im.size
    return im.crop((pixels, pixels, w - pixels, h - pixels))


def _noise(im: Image.Image, sigma: float = 0.03) -> Image.Image:
    a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    a = a + np.random.default_rng(0).normal(0.0, sigma, a.shape)
    return Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))


# The copies every discriminative embedder must still match (see the contract tests).
COPY_TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resize_half": lambda im: im.resize((im.width // 2, im.height // 2), Image.BILINEAR),
    "resize_three_quarters": lambda im: im.resize((im.width * 3 // 4,) * 2, Image.BILINEAR),
    "jpeg_q70": lambda im: Image.open(io.BytesIO(jpeg_bytes(im))),
    # PDQ is crop-fragile: on these images 2 px per side (0.8%) moves it <= 24 bits, 3 px up
    # to 34 and 5 px 24-40 (threshold 31), so "small crop" means 2 px of 256.
    "crop_2px_per_side": lambda im: _crop(im, 2),
    "noise_sigma_0.03": _noise,
}
