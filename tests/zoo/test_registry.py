"""The catalogue registry: every work of the zoo's artists, labelled as a registry would, with the
zoo's own training images among them pixel for pixel."""

from __future__ import annotations

from collections import Counter

import torch

from dmsec.images import load_png
from dmsec.match import ProtectedArtworkIndex
from dmsec.zoo.art_config import ART
from dmsec.zoo.registry import art_catalogue, build_catalogue_registry, read_works


def test_digit_catalogue_registers_every_work_but_the_controls(small_zoo, tmp_path):
    registry, works = build_catalogue_registry(small_zoo.root, tmp_path / "reg")
    rows = works.to_pylist()
    assert read_works(tmp_path / "reg").equals(works)
    roles = Counter((r["role"], r["protected"]) for r in rows)
    assert roles[("train", True)] == 10 and roles[("holdout", True)] == 10
    assert roles[("control", False)] == 10 and roles[("distractor", True)] > 400
    registered = {r["artwork_id"] for r in rows if r["protected"]}
    assert None not in registered and all(r["artwork_id"] is None for r in rows if not r["protected"])  # fmt: skip
    assert len(ProtectedArtworkIndex.open(tmp_path / "reg")) == len(registered) == len(registry)
    for entry in small_zoo.select(protected=True):  # the zoo's training images are the registry's
        train = sorted((r for r in rows if r["set"] == entry.set and r["role"] == "train"), key=lambda r: r["index"])  # fmt: skip
        for rel, r in zip(entry.train_images, train, strict=True):
            assert torch.equal(load_png(small_zoo.root / rel), load_png(r["path"]))
    control = next(e for e in small_zoo.fine_tunes if not e.protected)  # unregistered: no match
    hits = registry.search(
        [str(small_zoo.root / p) for p in control.train_images], threshold=0.9999
    )
    assert hits == []


def test_art_catalogue_holds_every_drawing_of_the_artists_involved():
    works, images = art_catalogue(ART)
    by_artist = Counter(w.artist for w in works)
    assert set(by_artist) == {s.artist for s in ART.sets} and len(set(by_artist.values())) == 1
    for s in ART.sets:
        mine = Counter(w.role for w in works if w.set == s.name)
        assert mine == ({"train": s.n_train, "holdout": s.n_holdout} if s.protected else {"control": s.n_train + s.n_holdout})  # fmt: skip
    assert images(works[:2]).shape == (2, 3, ART.model.image_size, ART.model.image_size)
