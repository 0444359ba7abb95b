"""`dmsec index add` on a new registry without `--embedder`: the embedder that fits the images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from artwork_factory import draw_artwork, png_bytes
from click.testing import CliRunner
from PIL import Image

from dmsec.cli import main
from dmsec.match.choice import EmbedderChoiceError, choose_embedders


def _digits(n: int = 4) -> list[Image.Image]:
    """The zoo's 16x16 grey digits (scikit-learn's, as the digit zoo trains on them)."""
    from dmsec.zoo.data import load_digit_images

    images, _ = load_digit_images()
    return [Image.fromarray((images[i, 0].numpy() * 255).round().astype(np.uint8)) for i in range(n)]  # fmt: skip


def _emoji_like(n: int = 4) -> list[Image.Image]:
    """32x32 colour drawings, the art zoo's image size."""
    return [draw_artwork(seed).resize((32, 32), Image.LANCZOS) for seed in range(n)]


def _folder(root: Path, images: list[Image.Image], name: str) -> Path:
    folder = root / name
    folder.mkdir()
    for i, im in enumerate(images):
        (folder / f"{name}_{i}.png").write_bytes(png_bytes(im))
    return folder


def _add(folder: Path, reg: Path, *extra: str):
    args = ["index", "add", str(folder), "--owner", "o", "--registry", str(reg), *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _embedders(reg: Path) -> list[str]:
    result = CliRunner().invoke(main, ["index", "stats", "--json", "--registry", str(reg)])
    return [e["name"] for e in json.loads(result.output)["embedders"]]


@pytest.mark.parametrize(
    ("make", "expected", "why"),
    [
        (_digits, "zoo", "4 small grey images (16x16"),
        (_emoji_like, "art", "4 small colour images (32x32"),
        (lambda: [draw_artwork(s) for s in range(3)], "pdq", "3 images of artwork size (256x256"),
    ],
    ids=["grey16", "colour32", "colour256"],
)
def test_any_checkpoint_index_add_picks_the_embedder(tmp_path, make, expected, why):
    folder = _folder(tmp_path, make(), "art")
    reg = tmp_path / "reg"
    result = _add(folder, reg)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("new registry: embedder") == 1  # said once, and why
    assert f"new registry: embedder {expected} for {why}" in result.stderr
    assert _embedders(reg) == [expected]
    # adding to the registry it made says nothing more and keeps its embedder
    again = _add(_folder(tmp_path, make()[:1], "more"), reg)
    assert "new registry" not in again.stderr and _embedders(reg) == [expected]


def test_any_checkpoint_index_add_grey_saved_as_rgb_is_grey(tmp_path):
    folder = _folder(tmp_path, [im.convert("RGB") for im in _digits()], "rgb")
    result = _add(folder, tmp_path / "reg")
    assert result.exit_code == 0 and _embedders(tmp_path / "reg") == ["zoo"]


def test_any_checkpoint_index_add_explicit_embedder_wins(tmp_path):
    folder = _folder(tmp_path, _emoji_like(), "art")
    result = _add(folder, tmp_path / "reg", "--embedder", "pdq", "--embedder", "zoo")
    assert result.exit_code == 0 and "new registry" not in result.stderr
    assert _embedders(tmp_path / "reg") == ["pdq", "zoo"]


def test_any_checkpoint_index_add_mixed_sizes_names_the_embedders(tmp_path):
    folder = _folder(tmp_path, _emoji_like(2) + [draw_artwork(9)], "mixed")
    result = _add(folder, tmp_path / "reg")
    assert result.exit_code != 0
    assert "--embedder art or --embedder pdq" in result.output
    assert "2 small ones (32x32" in result.output and "1 of artwork size (256x256" in result.output
    assert not (tmp_path / "reg").exists()  # nothing created


def test_any_checkpoint_index_add_unreadable_files_name_the_embedders(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    result = _add(folder, tmp_path / "reg")
    assert result.exit_code != 0 and "no readable image" in result.output
    assert "--embedder pdq or --embedder art or --embedder zoo" in result.output


def test_any_checkpoint_choose_embedders_small_colour_with_grey_is_art():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.random((16, 16, 1), dtype=np.float32), 3, axis=2)
    colour = rng.random((32, 32, 3), dtype=np.float32)
    choice = choose_embedders([grey, colour])
    assert choice.names == ("art",) and "1 grey among them" in choice.reason
    assert choose_embedders([grey]).names == ("zoo",)
    # one side under 64 px is small, whatever the other
    with pytest.raises(EmbedderChoiceError) as info:
        choose_embedders([rng.random((40, 300, 3), dtype=np.float32), rng.random((64, 64, 3), dtype=np.float32)])  # fmt: skip
    assert info.value.candidates == ("art", "pdq")
