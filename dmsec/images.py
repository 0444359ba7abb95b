"""Images: trusted encode/decode for what dmsec itself writes, and decoding of untrusted ones.

Trusted (images dmsec produced: zoo sets, generations, evidence): `png_bytes`, `save_png`,
`load_png(s)`, `to_uint8`, `image_grid`, tensors (C, H, W) in [0, 1].

Untrusted (hub files, user uploads, protected artwork from a registry's sources): every name says
so (`decode_untrusted_images`, `decode_untrusted_image`, `decode_untrusted_bytes`), and decoding is
defensive:

- only allow-listed formats are parsed (Pillow is told which plugins it may try, so a file
  claiming to be EPS never reaches Ghostscript);
- the pixel count is checked from the header *before* the pixels are decoded, so a
  decompression bomb (a small PNG that inflates to gigabytes) is refused cheaply;
- files larger than `max_bytes` are not read;
- a bad input becomes an `ImageError` record and the rest of the batch carries on.

The canonical decoded form is a C-contiguous ``(H, W, 3)`` float32 array in [0, 1] (RGB; grey is
replicated, alpha is composited over white, only the first frame of animations is used, EXIF
orientation is applied). In-memory inputs follow their library's layout and are never guessed:
NumPy arrays are ``(H, W)`` or ``(H, W, C)``, torch tensors ``(H, W)`` or ``(C, H, W)``; a batch
is a list of those, a 4-D NumPy array ``(B, H, W, C)`` or a torch tensor ``(B, C, H, W)`` /
``(B, H, W)`` (the layouts `dmsec.metrics` uses).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from dmsec.errors import ImageDecodeError


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


# -- untrusted images ---------------------------------------------------------------------------
# Formats decoded by default: the still-image formats artwork is published in.
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"})


@dataclass(frozen=True)
class DecodeLimits:
    """What an input image may be: formats, pixel count and file size.

    `max_pixels` defaults to 40 MP (e.g. 8000x5000), below Pillow's own bomb limit (~179 MP).
    """

    max_pixels: int = 40_000_000
    max_bytes: int = 100 * 2**20
    formats: frozenset[str] = field(default_factory=lambda: ALLOWED_FORMATS)

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"`max_pixels` must be >= 1; got {self.max_pixels}")
        if self.max_bytes < 1:
            raise ValueError(f"`max_bytes` must be >= 1; got {self.max_bytes}")
        unknown = {f.upper() for f in self.formats} - set(Image.registered_extensions().values())
        if not self.formats or unknown:
            raise ValueError(
                f"`formats` must be a non-empty set of Pillow format names; unknown: {sorted(unknown)}"
            )
        object.__setattr__(self, "formats", frozenset(f.upper() for f in self.formats))


@dataclass(frozen=True)
class ImageError:
    """Why input `index` (from `source`) was skipped."""

    index: int
    source: str
    reason: str


@dataclass(frozen=True)
class DecodedImage:
    """Input `index` decoded: pixels, its sha256 and where it came from.

    `sha256` is the hash of the file's bytes for files and encoded bytes, and of the canonical
    pixel array (shape and float32 values) for in-memory images.
    """

    index: int
    pixels: np.ndarray
    sha256: str
    source: str | None

    @property
    def height(self) -> int:
        """Rows of pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of pixels."""
        return int(self.pixels.shape[1])


def split_batch(images: Any) -> list[Any]:
    """A batch as a list of single inputs (see the module docstring for accepted layouts)."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ImageDecodeError(
                "images", f"a NumPy batch must be (B, H, W, C); got shape {images.shape}"
            )
        return list(images)
    if _is_tensor(images):
        if images.ndim == 3:
            return [images[i] for i in range(images.shape[0])]  # (B, H, W): grey batch
        if images.ndim == 4:
            return [images[i] for i in range(images.shape[0])]
        raise ImageDecodeError(
            "images", f"a tensor batch must be (B, C, H, W) or (B, H, W); got {tuple(images.shape)}"
        )
    if isinstance(images, (str, bytes, os.PathLike, Image.Image)):
        return [images]
    return list(images)


def decode_untrusted_images(
    images: Any, limits: DecodeLimits | None = None
) -> tuple[list[DecodedImage], list[ImageError]]:
    """Decode a batch; each bad input becomes an `ImageError` and the others carry on."""
    limits = limits or DecodeLimits()
    decoded: list[DecodedImage] = []
    errors: list[ImageError] = []
    for index, item in enumerate(split_batch(images)):
        source = _describe(item, index)
        try:
            decoded.append(decode_untrusted_image(item, index, limits))
        except ImageDecodeError as exc:
            errors.append(ImageError(index, source, exc.reason))
    return decoded, errors


def decode_untrusted_image(item: Any, index: int, limits: DecodeLimits) -> DecodedImage:
    """One input decoded under `limits`; raises `ImageDecodeError` naming it and the reason."""
    source = _describe(item, index)
    if isinstance(item, (str, os.PathLike)):
        data = _read_file(Path(item), limits)
        return DecodedImage(
            index, decode_untrusted_bytes(data, limits, source), _sha256(data), source
        )
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        if len(data) > limits.max_bytes:
            raise ImageDecodeError(
                source, f"{len(data)} bytes exceeds max_bytes={limits.max_bytes}"
            )
        return DecodedImage(index, decode_untrusted_bytes(data, limits, None), _sha256(data), None)
    if isinstance(item, Image.Image):
        _check_pixels(item.size, limits, source)
        pixels = _pil_to_rgb(item)
    elif isinstance(item, np.ndarray):
        pixels = _array_to_rgb(item, channels_last=True, source=source)
    elif _is_tensor(item):
        pixels = _array_to_rgb(item.detach().cpu().numpy(), channels_last=False, source=source)
    else:
        raise ImageDecodeError(source, f"unsupported input type {type(item).__name__}")
    _check_pixels((pixels.shape[1], pixels.shape[0]), limits, source)
    digest = hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    return DecodedImage(index, pixels, digest, None)


def decode_untrusted_bytes(
    data: bytes, limits: DecodeLimits, source: str | None = None
) -> np.ndarray:
    """Encoded image bytes to the canonical RGB array, refusing formats and sizes past `limits`."""
    name = source or "image bytes"
    if not data:
        raise ImageDecodeError(name, "empty file")
    with warnings.catch_warnings():
        # Pillow warns (rather than raises) between its own limit and twice that: make it fatal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=sorted(limits.formats)) as im:
                _check_pixels(im.size, limits, name)
                if im.format not in limits.formats:  # pragma: no cover - Pillow honours formats
                    raise ImageDecodeError(name, f"format {im.format} is not allowed")
                im.seek(0)
                return _pil_to_rgb(im)
        except ImageDecodeError:
            raise
        except Image.UnidentifiedImageError:
            raise ImageDecodeError(
                name, f"not an image in an allowed format ({', '.join(sorted(limits.formats))})"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDecodeError(name, f"decompression bomb refused: {exc}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageDecodeError(name, f"corrupt or truncated image: {exc}") from None


def _read_file(path: Path, limits: DecodeLimits) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageDecodeError(str(path), "not a regular file")
        if size > limits.max_bytes:
            raise ImageDecodeError(str(path), f"{size} bytes exceeds max_bytes={limits.max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError(str(path), "no such file") from None
    except PermissionError:
        raise ImageDecodeError(str(path), "permission denied") from None


def _check_pixels(size: tuple[int, int], limits: DecodeLimits, source: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageDecodeError(source, f"empty image ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageDecodeError(
            source,
            f"{width}x{height} = {width * height} pixels exceeds max_pixels={limits.max_pixels}",
        )


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    im = ImageOps.exif_transpose(im) or im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im, dtype=np.float32)
        top = 65535.0 if grey.max(initial=0) > 255 else 255.0
        grey = np.clip(grey / top, 0.0, 1.0)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb)


def _array_to_rgb(arr: np.ndarray, *, channels_last: bool, source: str) -> np.ndarray:
    if arr.ndim == 3 and not channels_last:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        layout = "(H, W, C)" if channels_last else "(C, H, W)"
        raise ImageDecodeError(
            source, f"array must be (H, W) or {layout} with C in 1, 3, 4; got shape {arr.shape}"
        )
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if not np.isfinite(x).all() or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
            raise ImageDecodeError(source, "float pixels must be finite and in [0, 1]")
    else:
        raise ImageDecodeError(source, f"pixels must be uint8 or float; got {arr.dtype}")
    if x.shape[2] == 4:
        alpha = x[:, :, 3:4]
        x = x[:, :, :3] * alpha + (1.0 - alpha)
    elif x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _is_tensor(item: Any) -> bool:
    return type(item).__module__.startswith("torch") and hasattr(item, "detach")


def _describe(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    return f"input[{index}]"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rgb_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Canonical float RGB to (H, W, 3) uint8, rounding to nearest."""
    return np.ascontiguousarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
