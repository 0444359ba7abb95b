"""A registry that looks like a real one: every work of the artists a zoo's fine-tunes drew on.

`dmsec.scan.resolve.build_zoo_registry` registers only the protected sets' training images, so
any match is to a work some fine-tune could have seen. A real registry holds an artist's whole
catalogue: a style fine-tune regenerates images close to works it never saw, and a finding on
such a work is a false claim of training-data use. `build_catalogue_registry` registers, for every
artist (art zoo) or digit class (digit zoo) a fine-tuning set draws from, every one of its works:

    role        what the work is to the zoo
    train       a training image of a fine-tuning set (`set` names it)
    holdout     a hold-out of a set: same artist and kind, seen by no model
    distractor  any other work of the artist (the rest of its catalogue)
    control     a training image or hold-out of a control set

and labels each `protected` as a rights registry would: the artists registered their catalogues
(train, holdout, distractor: protected) except the control sets' works, which nobody registered
(the zoo's controls are fine-tunes on unregistered images). Only protected works enter the
`ProtectedArtworkIndex`; `works.parquet` beside it lists every work with its label, role and
artwork id and image path (null for unregistered ones), which is the ground truth `benchmarks/scan_quality.py`
scores findings against: a finding is true iff its artwork is one of its checkpoint's
training images.

Images are written as the zoo writes its own (`save_png` of the same tensors at the zoo's size),
so a zoo's training image and its registry copy have the same pixels. Owners are the artists,
titles `<artist>/<index> <concept>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dmsec.errors import ConfigError
from dmsec.images import save_png

WORKS_FILE = "works.parquet"
ROLES = ("train", "holdout", "distractor", "control")
WORKS = pa.schema(
    [
        pa.field("artwork_id", pa.int64()),
        pa.field("artist", pa.string(), nullable=False),
        pa.field("index", pa.int32(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("set", pa.string()),
        pa.field("protected", pa.bool_(), nullable=False),
        pa.field("path", pa.string()),
    ],
    metadata={b"dmsec.schema": b"works/1"},
)


@dataclass(frozen=True)
class Work:
    """One work of an artist's catalogue and what it is to the zoo."""

    artist: str
    index: int  # in the artist's catalogue (the data set's order)
    title: str
    role: str
    set: str | None

    @property
    def protected(self) -> bool:
        return self.role != "control"


def _with_roles(
    artist: str, titles: list[str], sets: list[tuple[str, bool, list[int], list[int]]]
) -> list[Work]:
    """Every work of `artist`; `sets`: (name, protected, train indices, hold-out indices)."""
    role: dict[int, tuple[str, str]] = {}
    for name, protected, train, holdout in sets:
        for kind, indices in (("train", train), ("holdout", holdout)):
            for i in indices:
                if i in role:
                    raise ConfigError(f"{artist} work {i} is in sets {role[i][1]!r} and {name!r}")
                role[i] = (kind if protected else "control", name)
    return [Work(artist, i, t, *role.get(i, ("distractor", None))) for i, t in enumerate(titles)]


def art_config_of(zoo_root: str | Path) -> Any:
    """The `ArtZooConfig` preset a built art zoo was built from (its hash must match)."""
    from dmsec.zoo.art_config import ART_PRESETS
    from dmsec.zoo.build import Zoo

    manifest = Zoo(zoo_root).manifest
    config = ART_PRESETS.get(manifest["config"]["name"])
    if config is None or config.config_hash() != manifest["config_hash"]:
        raise ConfigError(f"{zoo_root}: its config is no art zoo preset of this code (hash {manifest['config_hash']})")  # fmt: skip
    return config


def art_catalogue(configs: Any) -> tuple[list[Work], Any]:
    """(every work of the artists of the art zoo configs' sets, a function works -> images);
    `configs`: one `ArtZooConfig` or several on one base (their sets hold no work twice)."""
    from dmsec.zoo.art_build import set_indices
    from dmsec.zoo.art_data import load_art_dataset

    configs = configs if isinstance(configs, (list, tuple)) else [configs]
    sizes = {c.model.image_size for c in configs}
    if len(sizes) != 1:
        raise ConfigError(f"art catalogue: the zoos draw at different sizes {sorted(sizes)}")
    size = sizes.pop()
    data = load_art_dataset()
    titles = [c.words for c in data.concepts]
    works: list[Work] = []
    for artist in sorted({s.artist for c in configs for s in c.sets}):
        sets = [(s.name, s.protected, *set_indices(data, c, s)) for c in configs for s in c.sets if s.artist == artist]  # fmt: skip
        names = [name for name, *_ in sets]
        if len(set(names)) != len(names):
            raise ConfigError(f"art catalogue: set names repeat across the zoos: {names}")
        works += _with_roles(artist, titles, sets)

    def images(chosen: list[Work]) -> torch.Tensor:
        return torch.cat([data.tensor(w.artist, [w.index], size) for w in chosen])

    return works, images


def digit_catalogue(zoo_root: str | Path) -> tuple[list[Work], Any]:
    """The same for the digit zoo: every image of each digit class a set draws from."""
    from dmsec.zoo.build import Zoo
    from dmsec.zoo.config import PRESETS
    from dmsec.zoo.data import load_digit_images

    manifest = Zoo(zoo_root).manifest
    config = PRESETS.get(manifest["config"]["name"])
    if config is None:
        raise ConfigError(f"{zoo_root}: its config is no digit zoo preset of this code")
    x, labels = load_digit_images()
    works: list[Work] = []
    catalogue: dict[str, list[int]] = {}
    for digit in sorted({s.digit for s in config.sets}):
        idx = (labels == digit).nonzero().flatten().tolist()
        artist = f"digit-{digit}"
        catalogue[artist] = idx
        sets = [(s.name, s.protected, list(range(s.offset, s.offset + s.n_images)),
                 list(range(s.offset + s.n_images, s.offset + 2 * s.n_images)))
                for s in config.sets if s.digit == digit]  # fmt: skip
        works += _with_roles(artist, [f"digit {digit}"] * len(idx), sets)

    def images(chosen: list[Work]) -> torch.Tensor:
        return x[[catalogue[w.artist][w.index] for w in chosen]]

    return works, images


def build_catalogue_registry(zoo_root: str | Path | list[Path], location: str | Path) -> tuple[Any, pa.Table]:  # fmt: skip
    """Register every protected work of the zoo's artists at `location` (a local folder) and
    write `works.parquet` there; returns (the `ProtectedArtworkIndex`, the works table).
    `zoo_root` may list several art zoos built on one base (the art zoo and `art-partial`): one
    catalogue covers the sets of all of them."""
    from dmsec.match import ProtectedArtworkIndex
    from dmsec.scan.resolve import zoo_embedder
    from dmsec.zoo.build import Zoo

    roots = list(zoo_root) if isinstance(zoo_root, list) else [zoo_root]
    if Zoo(roots[0]).grey:
        if len(roots) > 1:
            raise ConfigError("a catalogue registry covers one digit zoo")
        works, images = digit_catalogue(roots[0])
    else:
        works, images = art_catalogue([art_config_of(r) for r in roots])
    folder = Path(location)
    registry = ProtectedArtworkIndex.create(folder, embedders=[zoo_embedder(roots[0])])
    order = {"train": 0, "holdout": 1, "distractor": 2}  # a duplicate keeps the member's id
    ids: dict[tuple[str, int], int] = {}
    for artist in sorted({w.artist for w in works}):
        mine = sorted((w for w in works if w.artist == artist and w.protected), key=lambda w: (order[w.role], w.index))  # fmt: skip
        paths = [str((folder / "works" / artist / f"{w.index:04d}.png").resolve()) for w in mine]
        for image, path in zip(images(mine), paths, strict=True):
            save_png(image, path)
        report = registry.add(paths, owner=artist, title=[f"{artist}/{w.index:04d} {w.title}" for w in mine], source_uri=paths)  # fmt: skip
        if report.errors:
            raise ConfigError(f"catalogue registry: could not add {report.errors[0].source}: {report.errors[0].reason}")  # fmt: skip
        for a in report.added:
            ids[(artist, mine[a.index].index)] = a.artwork_id
        for d in report.duplicates:
            ids[(artist, mine[d.index].index)] = d.existing_id
    rows = [{"artwork_id": ids.get((w.artist, w.index)), "artist": w.artist, "index": w.index,
             "title": w.title, "role": w.role, "set": w.set, "protected": w.protected,
             "path": str((folder / "works" / w.artist / f"{w.index:04d}.png").resolve()) if w.protected else None}
            for w in works]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=WORKS)
    pq.write_table(table, folder / WORKS_FILE)
    return registry, table


def read_works(location: str | Path) -> pa.Table:
    """The `works.parquet` a catalogue registry at `location` was built with."""
    path = Path(location) / WORKS_FILE
    if not path.exists():
        raise ConfigError(f"{location}: no {WORKS_FILE}; build it with build_catalogue_registry")
    return pq.read_table(path)
