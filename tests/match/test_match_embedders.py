"""Contract tests every embedder inherits, plus embedder-specific checks.

A subclass supplies `embedder` and the `originals` it is meant for (drawn artworks for PDQ,
the zoo's digits for the zoo embedding). Discriminative embedders must match every transformed
copy (resize, JPEG re-encode, 2 px crop per side, light noise) within their default threshold and
no other original. The dense embedders are tested on random-init tiny models, which cannot
discriminate, so they run the mechanical part of the contract only.
"""

from __future__ import annotations

import numpy as np
import pytest
from artwork_factory import COPY_TRANSFORMS, png_bytes
from PIL import Image

from dmsec.images import DecodeLimits, decode_untrusted_image
from dmsec.match.dense import model_fingerprint
from dmsec.match.embedder import (
    Embedder,
    create_embedder,
    embedder_class,
    embedder_names,
    register_embedder,
)
from dmsec.match.errors import EmbedderError
from dmsec.match.pdq import PdqEmbedder, from_hex, to_hex
from dmsec.match.zoo import ZooEmbedder


def pixels(images: list[Image.Image]) -> list[np.ndarray]:
    """Decode PIL images to the canonical RGB arrays embedders take."""
    return [decode_untrusted_image(im, i, DecodeLimits()).pixels for i, im in enumerate(images)]


def matches(e: Embedder, a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
    """(len(a), len(b)) booleans: pair within threshold."""
    if e.metric == "hamming":
        dist = np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)
        return dist <= threshold
    return (a @ b.T) >= threshold


class EmbedderContract:
    """What every embedder must do. Subclasses set fixtures `embedder` and `originals`."""

    discriminative = True

    def test_registered_under_its_unique_name(self, embedder: Embedder) -> None:
        assert embedder.name in embedder_names()
        assert embedder_class(embedder.name) is type(embedder)

    def test_codes_have_the_declared_shape_and_dtype(
        self, embedder: Embedder, originals: list[Image.Image]
    ) -> None:
        codes = embedder.embed(pixels(originals[:3]))
        assert codes.shape == (
            3,
            embedder.code_size if embedder.metric == "hamming" else embedder.dim,
        )
        if embedder.metric == "hamming":
            assert codes.dtype == np.uint8 and codes.shape[1] * 8 == embedder.dim
        else:
            assert codes.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
        assert embedder.check_codes(codes) is not None

    def test_embedding_is_deterministic_and_batch_independent(
        self, embedder: Embedder, originals: list[Image.Image]
    ) -> None:
        batch = embedder.embed(pixels(originals[:3]))
        one_by_one = np.concatenate([embedder.embed(pixels([im])) for im in originals[:3]])
        np.testing.assert_allclose(batch, one_by_one, atol=1e-5)

    def test_images_of_different_sizes_share_a_batch(
        self, embedder: Embedder, originals: list[Image.Image]
    ) -> None:
        mixed = [originals[0], originals[1].resize((100, 60))]
        assert len(embedder.embed(pixels(mixed))) == 2

    def test_config_rebuilds_an_identical_embedder(
        self, embedder: Embedder, originals: list[Image.Image]
    ) -> None:
        clone = create_embedder(embedder.name, embedder.config())
        imgs = pixels(originals[:2])
        np.testing.assert_array_equal(clone.embed(imgs), embedder.embed(imgs))

    def test_out_of_range_threshold_is_refused_by_name(self, embedder: Embedder) -> None:
        bad = 300 if embedder.metric == "hamming" else 1.5
        with pytest.raises(EmbedderError, match="`threshold` must be"):
            embedder.validate_threshold(bad)

    @pytest.mark.parametrize("transform", sorted(COPY_TRANSFORMS))
    def test_transformed_copies_match(
        self, embedder: Embedder, originals: list[Image.Image], transform: str
    ) -> None:
        if not self.discriminative:
            pytest.skip(f"{embedder.name}: random-init test model cannot discriminate")
        threshold = embedder.validate_threshold(None)
        base = embedder.embed(pixels(originals))
        copies = embedder.embed(pixels([COPY_TRANSFORMS[transform](im) for im in originals]))
        assert matches(embedder, base, copies, threshold).diagonal().all()

    def test_unrelated_originals_do_not_match(
        self, embedder: Embedder, originals: list[Image.Image]
    ) -> None:
        if not self.discriminative:
            pytest.skip(f"{embedder.name}: random-init test model cannot discriminate")
        codes = embedder.embed(pixels(originals))
        hit = matches(embedder, codes, codes, embedder.validate_threshold(None))
        np.fill_diagonal(hit, False)
        assert not hit.any()


class TestPdqContract(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return PdqEmbedder()

    @pytest.fixture
    def originals(self, artworks: list[Image.Image]) -> list[Image.Image]:
        return artworks


class TestZooContract(EmbedderContract):
    @pytest.fixture
    def embedder(self) -> Embedder:
        return ZooEmbedder()

    @pytest.fixture
    def originals(self, digit_artworks: list[Image.Image]) -> list[Image.Image]:
        return digit_artworks


class TestDinov2Contract(EmbedderContract):
    discriminative = False

    @pytest.fixture
    def embedder(self, tiny_model_dirs: dict) -> Embedder:
        return create_embedder("dinov2", {"model_path": str(tiny_model_dirs["dinov2"])})

    @pytest.fixture
    def originals(self, artworks: list[Image.Image]) -> list[Image.Image]:
        return artworks


class TestClipContract(EmbedderContract):
    discriminative = False

    @pytest.fixture
    def embedder(self, tiny_model_dirs: dict) -> Embedder:
        return create_embedder("clip", {"model_path": str(tiny_model_dirs["clip"])})

    @pytest.fixture
    def originals(self, artworks: list[Image.Image]) -> list[Image.Image]:
        return artworks


def test_pdq_codes_are_threatexchange_hex(artworks: list[Image.Image]) -> None:
    import pdqhash

    bits, _ = pdqhash.compute(np.asarray(artworks[0]))
    expected = f"{int(''.join(map(str, bits)), 2):064x}"  # threatexchange's pdq_hasher
    code = PdqEmbedder().embed(pixels(artworks[:1]))[0]
    assert to_hex(code) == expected
    np.testing.assert_array_equal(from_hex(expected), code)


def test_zoo_default_threshold_is_the_calibrated_copy_threshold() -> None:
    from dmsec.metrics import copy_threshold

    assert ZooEmbedder().default_threshold == copy_threshold()
    assert ZooEmbedder(threshold=0.95).default_threshold == 0.95


def test_zoo_equals_metrics_zoo_embedding_on_tensors() -> None:
    import torch

    from dmsec.metrics import zoo_embedding
    from dmsec.zoo.data import load_digit_images

    images, _ = load_digit_images()
    batch = images[:4]  # (4, 1, 16, 16) in [0, 1], the zoo's layout
    ours = ZooEmbedder().embed(
        [decode_untrusted_image(x, i, DecodeLimits()).pixels for i, x in enumerate(batch)]
    )
    np.testing.assert_allclose(ours, zoo_embedding(torch.as_tensor(batch)), atol=1e-5)


def test_unknown_embedder_names_the_choices() -> None:
    with pytest.raises(EmbedderError, match="unknown embedder 'sscd'.*pdq"):
        create_embedder("sscd")


def test_names_are_unique_and_valid() -> None:
    class Clash(PdqEmbedder):
        name = "pdq"

    with pytest.raises(EmbedderError, match="already registered"):
        register_embedder(Clash)

    class Reserved(PdqEmbedder):
        name = "owner"

    with pytest.raises(EmbedderError, match="`name`"):
        register_embedder(Reserved)


def test_dense_embedder_has_no_default_threshold(tiny_model_dirs: dict) -> None:
    e = create_embedder("dinov2", {"model_path": str(tiny_model_dirs["dinov2"])})
    with pytest.raises(EmbedderError, match="`threshold` is required"):
        e.validate_threshold(None)
    assert e.dim == 32
    assert create_embedder("clip", {"model_path": str(tiny_model_dirs["clip"])}).dim == 24


def test_dense_embedder_refuses_other_weights(tiny_model_dirs: dict, artworks: list) -> None:
    wrong = model_fingerprint(tiny_model_dirs["clip"])
    e = create_embedder(
        "dinov2", {"model_path": str(tiny_model_dirs["dinov2"]), "fingerprint": wrong}
    )
    with pytest.raises(EmbedderError, match="not the one this registry was built with"):
        e.embed(pixels(artworks[:1]))


def test_dense_embedder_refuses_folders_without_safetensors(tmp_path, artworks: list) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "dinov2"}')
    (tmp_path / "pytorch_model.bin").write_bytes(png_bytes(artworks[0]))  # any pickle-ish blob
    e = create_embedder("dinov2", {"model_path": str(tmp_path)})
    with pytest.raises(EmbedderError, match="safetensors"):
        e.embed(pixels(artworks[:1]))


def test_dense_embedder_checks_the_model_type(tiny_model_dirs: dict) -> None:
    e = create_embedder("clip", {"model_path": str(tiny_model_dirs["dinov2"])})
    with pytest.raises(EmbedderError, match="not clip"):
        _ = e.dim


def test_dense_embedder_finds_a_repo_id_in_the_local_hf_cache(
    tiny_model_dirs: dict, tmp_path, artworks: list
) -> None:
    import shutil

    snapshot = tmp_path / "hub" / "models--tiny--dinov2" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_model_dirs["dinov2"], snapshot)
    (tmp_path / "hub" / "models--tiny--dinov2" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--dinov2" / "refs" / "main").write_text("0123abcd")
    cached = create_embedder(
        "dinov2", {"model_path": "tiny/dinov2", "cache_dir": str(tmp_path / "hub")}
    )
    local = create_embedder("dinov2", {"model_path": str(tiny_model_dirs["dinov2"])})
    np.testing.assert_array_equal(
        cached.embed(pixels(artworks[:2])), local.embed(pixels(artworks[:2]))
    )
    assert cached.config()["model_path"] == "tiny/dinov2"
    missing = create_embedder(
        "dinov2", {"model_path": "nobody/nothing", "cache_dir": str(tmp_path)}
    )
    with pytest.raises(EmbedderError, match="local Hugging Face cache"):
        _ = missing.dim
