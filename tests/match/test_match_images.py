"""Decoding untrusted images: allow-listed formats, pixel and byte limits, per-file errors."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from artwork_factory import draw_artwork, jpeg_bytes, png_bytes
from PIL import Image

from dmsec.errors import ImageDecodeError
from dmsec.images import (
    DecodeLimits,
    decode_untrusted_bytes,
    decode_untrusted_image,
    decode_untrusted_images,
)


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is a few bytes (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_png_and_jpeg_decode_to_rgb_floats() -> None:
    im = draw_artwork(0)
    for data in (png_bytes(im), jpeg_bytes(im)):
        pixels = decode_untrusted_bytes(data, DecodeLimits())
        assert pixels.shape == (256, 256, 3) and pixels.dtype == np.float32
        assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    np.testing.assert_allclose(
        decode_untrusted_bytes(png_bytes(im), DecodeLimits()), np.asarray(im) / 255.0, atol=1e-6
    )


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 49 MP: over our 40 MP default, under Pillow's own limits.
    with pytest.raises(ImageDecodeError, match="7000x7000 = 49000000 pixels exceeds max_pixels"):
        decode_untrusted_bytes(png_claiming_size(7000, 7000), DecodeLimits())
    # 10 GP: Pillow refuses it while opening, before our check; still an ImageDecodeError.
    with pytest.raises(ImageDecodeError, match="decompression bomb refused"):
        decode_untrusted_bytes(png_claiming_size(100_000, 100_000), DecodeLimits())


def test_pixel_limit_is_configurable() -> None:
    data = png_bytes(draw_artwork(0))
    with pytest.raises(ImageDecodeError, match="256x256 = 65536 pixels exceeds max_pixels=1000"):
        decode_untrusted_bytes(data, DecodeLimits(max_pixels=1000))


def test_formats_outside_the_allow_list_are_refused() -> None:
    buf = io.BytesIO()
    draw_artwork(0).resize((32, 32)).save(buf, "ICO")
    with pytest.raises(ImageDecodeError, match="not an image in an allowed format"):
        decode_untrusted_bytes(buf.getvalue(), DecodeLimits())
    eps_header = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(ImageDecodeError, match="allowed format"):
        decode_untrusted_bytes(eps_header, DecodeLimits())
    with pytest.raises(ImageDecodeError, match="allowed format"):
        decode_untrusted_bytes(
            png_bytes(draw_artwork(0)), DecodeLimits(formats=frozenset({"JPEG"}))
        )


def test_truncated_and_empty_files_give_reasons() -> None:
    data = jpeg_bytes(draw_artwork(0))
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        decode_untrusted_bytes(data[: len(data) // 3], DecodeLimits())
    with pytest.raises(ImageDecodeError, match="empty file"):
        decode_untrusted_bytes(b"", DecodeLimits())


def test_batch_continues_past_bad_files_with_error_records(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(draw_artwork(1)))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_bytes(draw_artwork(2)))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming_size(7000, 7000))
    inputs = [str(text), good, tmp_path / "missing.png", bomb, big.read_bytes()]
    decoded, errors = decode_untrusted_images(inputs, DecodeLimits())
    assert [d.index for d in decoded] == [1, 4]
    assert decoded[0].sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    assert decoded[0].source == str(good)
    reasons = {e.index: (e.source, e.reason) for e in errors}
    assert reasons[0] == (str(text), reasons[0][1]) and "allowed format" in reasons[0][1]
    assert reasons[2][1] == "no such file"
    assert "exceeds max_pixels" in reasons[3][1]


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(draw_artwork(0)))
    _, errors = decode_untrusted_images([path], DecodeLimits(max_bytes=100))
    assert "exceeds max_bytes=100" in errors[0].reason


def test_alpha_is_composited_over_white_and_grey_is_replicated() -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    pixels = decode_untrusted_image(rgba, 0, DecodeLimits()).pixels
    np.testing.assert_allclose(pixels, 1.0)
    grey = Image.new("L", (8, 8), 51)
    np.testing.assert_allclose(
        decode_untrusted_image(grey, 0, DecodeLimits()).pixels, 0.2, atol=1e-6
    )


def test_in_memory_layouts_follow_their_library() -> None:
    hwc = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    chw = torch.from_numpy(hwc.transpose(2, 0, 1).copy())
    a = decode_untrusted_image(hwc, 0, DecodeLimits()).pixels
    b = decode_untrusted_image(chw, 0, DecodeLimits()).pixels
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, 30, 3)
    batch_np, _ = decode_untrusted_images(np.stack([hwc, hwc]))
    batch_t, _ = decode_untrusted_images(torch.stack([chw, chw]))
    assert len(batch_np) == len(batch_t) == 2
    digits, errors = decode_untrusted_images(torch.rand(5, 1, 16, 16))
    assert len(digits) == 5 and not errors and digits[0].pixels.shape == (16, 16, 3)


def test_bad_arrays_are_errors_not_guesses() -> None:
    with pytest.raises(ImageDecodeError, match="float pixels must be finite and in"):
        decode_untrusted_image(np.full((4, 4, 3), 2.0, np.float32), 0, DecodeLimits())
    with pytest.raises(ImageDecodeError, match="array must be"):
        decode_untrusted_image(np.zeros((4, 4, 7), np.uint8), 0, DecodeLimits())
    with pytest.raises(ImageDecodeError, match="NumPy batch must be"):
        decode_untrusted_images(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match="unsupported input type"):
        decode_untrusted_image(3.5, 0, DecodeLimits())


def test_limits_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="`max_pixels` must be >= 1; got 0"):
        DecodeLimits(max_pixels=0)
    with pytest.raises(ValueError, match="`formats`"):
        DecodeLimits(formats=frozenset({"NOPE"}))
