"""ProtectedArtworkIndex: add/dedupe/remove/search/reload/rebuild on a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from artwork_factory import COPY_TRANSFORMS, draw_artwork, jpeg_bytes, png_bytes
from PIL import Image

from dmsec.errors import ImageDecodeError
from dmsec.match import (
    EmbedderError,
    IndexPolicy,
    ProtectedArtworkIndex,
    RegistryError,
    hits_to_table,
)
from dmsec.match.faiss_index import VectorIndex
from dmsec.match.registry_records import artworks_schema


@pytest.fixture
def files(tmp_path: Path, artworks: list[Image.Image]) -> list[Path]:
    """The drawn artworks saved as PNG files."""
    paths = []
    for i, im in enumerate(artworks):
        path = tmp_path / "art" / f"work_{i}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(png_bytes(im))
        paths.append(path)
    return paths


@pytest.fixture
def registry(tmp_path: Path, files: list[Path]) -> ProtectedArtworkIndex:
    """A registry holding the first six artworks (pdq + zoo)."""
    idx = ProtectedArtworkIndex.create(tmp_path / "reg")
    report = idx.add(files[:6], owner="Studio A")
    assert report.ids == list(range(6)) and not report.errors and not report.duplicates
    return idx


def copies_of(im: Image.Image) -> list[Image.Image]:
    return [transform(im) for transform in COPY_TRANSFORMS.values()]


def best(hits: list, query: int) -> int | None:
    mine = [h for h in hits if h.query_index == query and h.rank == 0]
    return mine[0].artwork_id if mine else None


def test_transformed_copies_match_and_unrelated_do_not(registry, artworks) -> None:
    queries = copies_of(artworks[2]) + [artworks[6], artworks[7]]
    hits = registry.search(queries, embedder="pdq")
    n = len(COPY_TRANSFORMS)
    assert {h.query_index for h in hits} == set(range(n))
    assert {h.artwork_id for h in hits} == {2}
    assert all(h.score <= 31 and h.threshold == 31 and h.metric == "hamming" for h in hits)


def test_search_with_the_zoo_embedder_uses_its_calibrated_threshold(
    tmp_path, digit_artworks
) -> None:
    from dmsec.metrics import copy_threshold

    idx = ProtectedArtworkIndex.create(tmp_path / "zoo", ["zoo"])
    idx.add(digit_artworks[:8], owner="zoo")
    hits = idx.search(copies_of(digit_artworks[3]) + digit_artworks[8:], embedder="zoo")
    assert {(h.query_index, h.artwork_id) for h in hits} == {
        (q, 3) for q in range(len(COPY_TRANSFORMS))
    }
    assert all(h.threshold == copy_threshold() and h.score >= h.threshold for h in hits)


def test_scan_style_tensor_batches_search(tmp_path) -> None:
    from dmsec.zoo.data import load_digit_images

    digits, _ = load_digit_images()
    idx = ProtectedArtworkIndex.create(tmp_path / "zoo", ["zoo"])
    idx.add(digits[:20], owner="zoo", source_uri=[f"digits#{i}" for i in range(20)])
    candidates = torch.cat([digits[5:6], digits[7:8]]) * 0.9 + 0.05  # contrast change
    hits = idx.search(candidates, embedder="zoo")
    assert [(h.query_index, h.artwork_id) for h in hits] == [(0, 5), (1, 7)]


def test_top_k_is_ordered_and_bounded(registry, artworks) -> None:
    hits = registry.search([artworks[1]], embedder="pdq", k=3)
    assert [h.rank for h in hits] == [0, 1, 2]
    assert hits[0].artwork_id == 1 and hits[0].score == 0 and hits[0].threshold is None
    assert hits[0].score <= hits[1].score <= hits[2].score
    limited = registry.search([artworks[1]], embedder="pdq", k=3, threshold=31)
    assert [h.artwork_id for h in limited] == [1]
    zoo = registry.search([artworks[1]], embedder="zoo", k=2)
    assert zoo[0].artwork_id == 1 and zoo[0].score >= zoo[1].score


def test_duplicates_by_sha256_and_identical_hash(registry, files, artworks, tmp_path) -> None:
    bmp = tmp_path / "same_pixels.bmp"
    artworks[0].save(bmp, "BMP")  # other bytes, same pixels: every code identical
    again = tmp_path / "again.png"
    again.write_bytes(files[6].read_bytes())
    report = registry.add([files[1], bmp, files[6], again, bmp], owner="Studio B")
    assert report.ids == [6]
    got = {(d.index, d.existing_id, d.reason) for d in report.duplicates}
    assert got == {(0, 1, "sha256"), (1, 0, "identical_hash"), (3, 6, "sha256"), (4, 0, "sha256")}
    assert len(registry) == 7


def test_bad_files_give_error_records_and_the_rest_is_added(registry, tmp_path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(jpeg_bytes(draw_artwork(50))[:500])
    note = tmp_path / "readme.txt"
    note.write_text("hello")
    good = tmp_path / "fine.jpg"
    good.write_bytes(jpeg_bytes(draw_artwork(51)))
    report = registry.add([bad, note, good, tmp_path / "nope.png"], owner="X")
    assert report.ids == [6]
    assert [(e.index, e.source) for e in report.errors] == [
        (0, str(bad)),
        (1, str(note)),
        (3, str(tmp_path / "nope.png")),
    ]
    assert "truncated" in report.errors[0].reason


def test_remove_works_and_ids_are_never_reused(registry, artworks, files) -> None:
    assert best(registry.search([artworks[4]], embedder="pdq"), 0) == 4
    assert registry.remove(4) == [4]
    assert registry.search([artworks[4]], embedder="pdq") == []
    assert registry.search([artworks[4]], embedder="zoo") == []
    assert 4 not in registry.artworks()["id"].to_pylist()
    with pytest.raises(RegistryError, match="no artwork with id 4"):
        registry.remove([4])
    assert registry.add([files[4]], owner="Studio A").ids == [6]
    registry.remove(5)
    reopened = ProtectedArtworkIndex.open(registry.location)
    assert reopened.add([files[5]], owner="Studio A").ids == [7]


@pytest.mark.parametrize(
    "policy",
    [IndexPolicy(), IndexPolicy(multihash_above=0, approximate_above=0)],
    ids=["exact", "multihash+hnsw"],
)
def test_reloaded_registry_answers_identically(tmp_path, files, artworks, policy) -> None:
    idx = ProtectedArtworkIndex.create(tmp_path / "reg", policy=policy)
    idx.add(files, owner="Studio A", title=[f"T{i}" for i in range(len(files))])
    idx.remove([3])  # stale in hnsw, deleted elsewhere
    queries = [c for im in artworks[:5] for c in copies_of(im)]
    again = ProtectedArtworkIndex.open(idx.location)
    for embedder in ("pdq", "zoo"):
        assert again.search(queries, embedder=embedder) == idx.search(queries, embedder=embedder)
        assert again.search(queries, embedder=embedder, k=4) == idx.search(
            queries, embedder=embedder, k=4
        )
        assert 3 not in {h.artwork_id for h in idx.search(queries, embedder=embedder, k=8)}
    assert again.artworks().equals(idx.artworks())


def test_adding_extends_the_index_without_rebuilding(registry, files, monkeypatch) -> None:
    before = registry.stats().embedders[0].codes

    def refuse(*args, **kwargs):
        raise AssertionError("add must not rebuild an index")

    monkeypatch.setattr(VectorIndex, "build", refuse)
    reopened = ProtectedArtworkIndex.open(registry.location)
    assert reopened.add(files[6:], owner="Studio C").ids == [6, 7]
    assert reopened.stats().embedders[0].codes == before + 2


def test_rebuild_drops_stale_codes_and_applies_the_policy(tmp_path, files) -> None:
    idx = ProtectedArtworkIndex.create(
        tmp_path / "reg", policy=IndexPolicy(multihash_above=0, approximate_above=0)
    )
    idx.add(files, owner="A")
    idx.remove([0, 1])
    stats = {e.name: e for e in idx.stats().embedders}
    assert (stats["pdq"].kind, stats["pdq"].stale) == ("multihash", 0)
    assert (stats["zoo"].kind, stats["zoo"].stale) == ("hnsw", 2)
    assert stats["zoo"].rebuild_recommended and not stats["pdq"].rebuild_recommended
    idx.rebuild(IndexPolicy())
    stats = {e.name: e for e in ProtectedArtworkIndex.open(idx.location).stats().embedders}
    assert (stats["pdq"].kind, stats["pdq"].stale, stats["pdq"].codes) == ("flat", 0, 6)
    assert (stats["zoo"].kind, stats["zoo"].exact) == ("flat", True)


def test_stats_and_artworks_table(registry, files) -> None:
    s = registry.stats()
    assert (s.artworks, s.owners, s.next_id) == (6, 1, 6)
    assert [e.name for e in s.embedders] == ["pdq", "zoo"]
    assert (
        s.embedders[0].index_bytes and s.to_dict()["embedders"][0]["rebuild_recommended"] is False
    )
    table = registry.artworks()
    assert table.column_names == [
        "id",
        "owner",
        "title",
        "source_uri",
        "sha256",
        "width",
        "height",
        "added_at",
    ]
    row = table.slice(0, 1).to_pylist()[0]
    assert (row["title"], row["source_uri"], row["width"]) == (
        "work_0",
        str(files[0].resolve()),
        256,
    )
    full = registry.artworks(include_codes=True)
    assert full.schema.equals(artworks_schema([registry.embedder("pdq"), registry.embedder("zoo")]))


def test_hits_join_to_artworks(registry, artworks) -> None:
    hits = registry.search([artworks[2], artworks[0]], embedder="pdq")
    joined = (
        hits_to_table(hits)
        .join(registry.artworks(), keys="artwork_id", right_keys="id")
        .sort_by("query_index")
    )
    assert joined["title"].to_pylist() == ["work_2", "work_0"]
    assert isinstance(joined, pa.Table)


def test_validation_errors_name_the_field(registry, artworks) -> None:
    with pytest.raises(
        EmbedderError, match=r"`threshold` must be an integer in \[0, 256\].*got 300"
    ):
        registry.search([artworks[0]], embedder="pdq", threshold=300)
    with pytest.raises(RegistryError, match="`embedder` 'clip' is not in this registry"):
        registry.search([artworks[0]], embedder="clip")
    with pytest.raises(RegistryError, match="`owner` must be a non-empty string"):
        registry.add([artworks[0]], owner=" ")
    with pytest.raises(RegistryError, match="`title` has 1 entries for 2 images"):
        registry.add([artworks[6], artworks[7]], owner="A", title=["one"])
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        registry.search([artworks[0]], embedder="pdq", k=0)
    with pytest.raises(ImageDecodeError, match="input\\[0\\]"):
        registry.search([np.full((4, 4, 3), 9.0, np.float32)])


def test_open_and_create_guard_the_location(tmp_path, registry) -> None:
    with pytest.raises(RegistryError, match="registry.json is missing"):
        ProtectedArtworkIndex.open(tmp_path / "nothing")
    with pytest.raises(RegistryError, match="already exists"):
        ProtectedArtworkIndex.create(registry.location)
    created = ProtectedArtworkIndex.open(tmp_path / "fresh", create=True)
    assert created.embedder_names == ["pdq", "zoo"] and len(created) == 0


def test_dense_embedder_registry(tmp_path, tiny_model_dirs, artworks) -> None:
    from dmsec.match import create_embedder

    dino = create_embedder("dinov2", {"model_path": str(tiny_model_dirs["dinov2"])})
    idx = ProtectedArtworkIndex.create(tmp_path / "reg", ["pdq", dino])
    idx.add(artworks[:4], owner="A")
    with pytest.raises(EmbedderError, match="`threshold` is required"):
        idx.search([artworks[1]], embedder="dinov2")
    hits = idx.search([artworks[1]], embedder="dinov2", threshold=0.999)
    assert hits[0].artwork_id == 1 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    again = ProtectedArtworkIndex.open(idx.location)  # rebuilt from registry.json
    assert again.search([artworks[1]], embedder="dinov2", k=2) == idx.search(
        [artworks[1]], embedder="dinov2", k=2
    )
    moved = ProtectedArtworkIndex.open(
        idx.location, model_paths={"dinov2": str(tiny_model_dirs["clip"])}
    )
    with pytest.raises(EmbedderError, match="not the one this registry was built with"):
        moved.search([artworks[1]], embedder="dinov2", k=1)
