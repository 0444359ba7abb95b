"""New artworks on their way in: duplicate detection and their artworks.parquet rows.

Two kinds of duplicate are not added (python-threatexchange banks dedupe the same way):

- ``sha256``: the same bytes (or, for in-memory images, the same pixels) as a live artwork;
- ``identical_hash``: other bytes whose every embedder code is bit-identical to a live
  artwork's (e.g. the same pixels saved as PNG and as BMP), so no search could tell them apart.

A repeat inside one batch is an *alias* of the earlier input and is reported against whatever
id that input ends up with (its new id, or the id it was itself a duplicate of).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmsec.images import DecodedImage
from dmsec.match.codes import codes_from_arrow, codes_to_arrow
from dmsec.match.embedder import Embedder
from dmsec.match.errors import RegistryError
from dmsec.match.faiss_index import VectorIndex
from dmsec.match.registry_records import AddReport, Duplicate, DuplicateReason


@dataclass(frozen=True)
class Alias:
    """Input `image` repeats the earlier input `first` of the same batch."""

    image: DecodedImage
    first: int
    reason: DuplicateReason


def split_by_sha256(
    table: pa.Table, decoded: Sequence[DecodedImage], report: AddReport, aliases: list[Alias]
) -> list[DecodedImage]:
    """Inputs whose sha256 is new; the others go to `report.duplicates` or `aliases`."""
    known = _ids_by_value(table, "sha256", [d.sha256 for d in decoded])
    fresh: list[DecodedImage] = []
    first_with: dict[str, int] = {}
    for d, existing in zip(decoded, known, strict=True):
        if existing is not None:
            report.duplicates.append(Duplicate(d.index, existing, "sha256", d.source))
        elif d.sha256 in first_with:
            aliases.append(Alias(d, first_with[d.sha256], "sha256"))
        else:
            first_with[d.sha256] = d.index
            fresh.append(d)
    return fresh


def rows_with_code(
    index: VectorIndex, embedder: Embedder, codes: np.ndarray, table: pa.Table
) -> pa.Table:
    """Rows of `table` whose code in `index` is identical to one of `codes`."""
    threshold = 0.0 if embedder.metric == "hamming" else 1.0 - 1e-6
    _, _, found = index.range_search(codes, threshold)
    found = np.unique(found)  # ids no longer in `table` (stale HNSW entries) drop out below
    return table.filter(pc.is_in(table["id"], pa.array(found, pa.int64())))


def split_identical(
    fresh: Sequence[DecodedImage],
    codes: Mapping[str, np.ndarray],
    candidates: pa.Table,
    embedders: Mapping[str, Embedder],
    report: AddReport,
    aliases: list[Alias],
) -> list[int]:
    """Positions in `fresh` whose codes are not all identical to a `candidates` row's (live
    artworks the caller found near them) nor to an earlier input's."""
    names = list(embedders)
    row_codes = {n: codes_from_arrow(e, candidates[n]) for n, e in embedders.items()}
    known = {
        b"".join(row_codes[n][i].tobytes() for n in names): int(rid)
        for i, rid in enumerate(candidates["id"].to_numpy())
    }
    keep: list[int] = []
    first_with: dict[bytes, int] = {}
    for i, d in enumerate(fresh):
        key = b"".join(codes[n][i].tobytes() for n in names)
        if key in known:
            report.duplicates.append(Duplicate(d.index, known[key], "identical_hash", d.source))
        elif key in first_with:
            aliases.append(Alias(d, first_with[key], "identical_hash"))
        else:
            first_with[key] = d.index
            keep.append(i)
    return keep


def resolve_aliases(report: AddReport, aliases: Sequence[Alias]) -> None:
    """Report each alias as a duplicate of the id its earlier input ended up with."""
    id_of = {a.index: a.artwork_id for a in report.added}
    id_of.update({x.index: x.existing_id for x in report.duplicates})
    for alias in sorted(aliases, key=lambda a: a.image.index):
        target = id_of[alias.first]  # `first` comes earlier, so it is resolved already
        id_of[alias.image.index] = target
        report.duplicates.append(
            Duplicate(alias.image.index, target, alias.reason, alias.image.source)
        )
    report.duplicates.sort(key=lambda x: x.index)


def artwork_rows(
    schema: pa.Schema,
    images: Sequence[DecodedImage],
    ids: np.ndarray,
    codes: Mapping[str, np.ndarray],
    embedders: Mapping[str, Embedder],
    *,
    owner: str,
    titles: Sequence[str | None],
    uris: Sequence[str | None],
) -> pa.Table:
    """The artworks.parquet rows of new artworks (titles/uris are indexed by input index)."""
    now = dt.datetime.now(dt.UTC)
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.int64()),
        "owner": [owner] * len(images),
        "title": [titles[d.index] or _default_title(d.source) for d in images],
        "source_uri": [uris[d.index] or _default_uri(d.source) for d in images],
        "sha256": [d.sha256 for d in images],
        "width": pa.array([d.width for d in images], pa.int32()),
        "height": pa.array([d.height for d in images], pa.int32()),
        "added_at": pa.array([now] * len(images), pa.timestamp("us", tz="UTC")),
    }
    for name, e in embedders.items():
        columns[name] = codes_to_arrow(e, codes[name])
    return pa.table(columns, schema=schema)


def per_item(field: str, value: str | Sequence[str | None] | None, n: int) -> list[str | None]:
    """One value per input: a single string repeated, or a sequence of exactly `n`."""
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise RegistryError(f"`{field}` has {len(values)} entries for {n} images")
    return values


def _ids_by_value(table: pa.Table, column: str, values: list[str]) -> list[int | None]:
    """For each value, the id of the row whose `column` equals it, else None."""
    if not values or table.num_rows == 0:
        return [None] * len(values)
    value_set = table[column].combine_chunks()
    positions = pc.index_in(pa.array(values, pa.string()), value_set=value_set)
    ids = table["id"].to_numpy()
    return [None if p is None else int(ids[p]) for p in positions.to_pylist()]


def _default_title(source: str | None) -> str:
    return Path(source).stem if source else "untitled"


def _default_uri(source: str | None) -> str | None:
    return str(Path(source).resolve()) if source else None
