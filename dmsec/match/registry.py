"""`ProtectedArtworkIndex`: the registry of protected artworks that scans match against.

A registry is a folder (local path or ``s3://bucket/prefix``) holding

- ``registry.json``: embedders (name + config), index policy, id counter (`dmsec.match.manifest`);
- ``artworks.parquet``: one row per artwork, metadata plus every embedder's code
  (schema in `dmsec.match.registry_records`); the source of truth `rebuild` works from;
- ``<embedder>.faiss``: one FAISS index per embedder (`dmsec.match.faiss_index`), in FAISS's
  own serialisation.

Adding extends each FAISS index in place (no rebuild, no retraining); removing deletes codes
where the index kind allows and otherwise leaves them stale, filtered out of every search until
`rebuild`. One process writes a registry at a time; any number may read it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dmsec.images import DecodeLimits, decode_untrusted_image, decode_untrusted_images, split_batch
from dmsec.match.codes import codes_from_arrow
from dmsec.match.embedder import Embedder, create_embedder
from dmsec.match.errors import RegistryError
from dmsec.match.faiss_index import VectorIndex
from dmsec.match.index_policy import IndexPolicy
from dmsec.match.ingest import (
    Alias,
    artwork_rows,
    per_item,
    resolve_aliases,
    rows_with_code,
    split_by_sha256,
    split_identical,
)
from dmsec.match.manifest import Manifest
from dmsec.match.registry_records import (
    METADATA_FIELDS,
    AddedArtwork,
    AddReport,
    EmbedderStats,
    Hit,
    RegistryStats,
    artworks_schema,
)
from dmsec.match.search import collect_hits
from dmsec.storage import FileStore

MANIFEST_FILE = "registry.json"
ARTWORKS_FILE = "artworks.parquet"
DEFAULT_EMBEDDERS = ("pdq", "zoo")


def index_file(embedder: str) -> str:
    """File name of an embedder's FAISS index inside the registry."""
    return f"{embedder}.faiss"


def _store(location: str | Path, endpoint_url: str | None) -> FileStore:
    """The registry's files at `location`; failures raise `RegistryError`."""
    return FileStore(location, endpoint_url=endpoint_url, error=RegistryError)


class ProtectedArtworkIndex:
    """Protected artworks, their codes and one FAISS index per embedder; see the module doc."""

    def __init__(
        self,
        store: FileStore,
        manifest: Manifest,
        embedders: dict[str, Embedder],
        table: pa.Table,
        *,
        limits: DecodeLimits | None = None,
        use_gpu: bool | None = None,
    ) -> None:
        self._store = store
        self._manifest = manifest
        self._embedders = embedders
        self._table = table
        self._indexes: dict[str, VectorIndex] = {}
        self.limits = limits or DecodeLimits()
        self.use_gpu = use_gpu
        self._live_ids = np.sort(table["id"].to_numpy())

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        location: str | Path,
        embedders: Sequence[str | Embedder] = DEFAULT_EMBEDDERS,
        *,
        policy: IndexPolicy | None = None,
        endpoint_url: str | None = None,
        limits: DecodeLimits | None = None,
        use_gpu: bool | None = None,
    ) -> ProtectedArtworkIndex:
        """A new, empty registry at `location` using `embedders` (names or instances)."""
        store = _store(location, endpoint_url)
        if store.exists(MANIFEST_FILE):
            raise RegistryError(f"a registry already exists at {store.uri(MANIFEST_FILE)}")
        resolved = [create_embedder(e) if isinstance(e, str) else e for e in embedders]
        names = [e.name for e in resolved]
        if not names or len(set(names)) != len(names):
            raise RegistryError(f"`embedders` must be non-empty and unique; got {names}")
        manifest = Manifest([(e.name, e.config()) for e in resolved], policy or IndexPolicy())
        table = artworks_schema(resolved).empty_table()
        registry = cls(
            store, manifest, {e.name: e for e in resolved}, table, limits=limits, use_gpu=use_gpu
        )
        for e in resolved:
            registry._indexes[e.name] = registry._build_index(e)
        registry._commit(names)
        return registry

    @staticmethod
    def exists(location: str | Path, *, endpoint_url: str | None = None) -> bool:
        """Whether a registry (its registry.json) exists at `location`."""
        return _store(location, endpoint_url).exists(MANIFEST_FILE)

    @classmethod
    def open(
        cls,
        location: str | Path,
        *,
        embedders: Mapping[str, Embedder] | None = None,
        model_paths: Mapping[str, str | Path] | None = None,
        create: bool = False,
        endpoint_url: str | None = None,
        limits: DecodeLimits | None = None,
        use_gpu: bool | None = None,
    ) -> ProtectedArtworkIndex:
        """The registry at `location`.

        `embedders` replaces how a stored embedder is built; `model_paths` only moves a dense
        embedder's weights (e.g. ``{"dinov2": "/models/dinov2-small"}``). Either way the weights
        must match the fingerprint the registry recorded. With `create`, a missing registry is
        created with the default embedders (or those in `embedders`).
        """
        store = _store(location, endpoint_url)
        text = store.read_bytes(MANIFEST_FILE)
        if text is None:
            if create:
                chosen = list(embedders.values()) if embedders else list(DEFAULT_EMBEDDERS)
                return cls.create(
                    location, chosen, endpoint_url=endpoint_url, limits=limits, use_gpu=use_gpu
                )
            raise RegistryError(
                f"no registry at {store.location} ({MANIFEST_FILE} is missing); create one with "
                "ProtectedArtworkIndex.create() or `dmsec index add`"
            )
        manifest = Manifest.from_json(text.decode(), store.uri(MANIFEST_FILE))
        resolved = manifest.build_embedders(embedders, model_paths)
        data = store.read_bytes(ARTWORKS_FILE)
        if data is None:
            table = artworks_schema(list(resolved.values())).empty_table()
        else:
            table = pq.read_table(io.BytesIO(data))
            expected = {f.name for f in METADATA_FIELDS} | set(resolved)
            missing = {f.name for f in table.schema} ^ expected
            if missing:
                raise RegistryError(
                    f"{store.uri(ARTWORKS_FILE)}: columns do not match registry.json: {sorted(missing)}"
                )
        return cls(store, manifest, resolved, table, limits=limits, use_gpu=use_gpu)

    # -- properties -----------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the registry lives."""
        return self._store.location

    @property
    def embedder_names(self) -> list[str]:
        """Embedder names in registry order (the first is the default for `search`)."""
        return [name for name, _ in self._manifest.embedders]

    @property
    def policy(self) -> IndexPolicy:
        """The index policy recorded in the manifest."""
        return self._manifest.policy

    def embedder(self, name: str | None = None) -> Embedder:
        """The embedder called `name` (default: the first)."""
        name = name or self.embedder_names[0]
        if name not in self._embedders:
            raise RegistryError(
                f"`embedder` {name!r} is not in this registry; it has {self.embedder_names}"
            )
        return self._embedders[name]

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"ProtectedArtworkIndex({self.location!r}, artworks={len(self)}, embedders={self.embedder_names})"

    def artworks(self, include_codes: bool = False) -> pa.Table:
        """The artworks table (see `dmsec.match.registry_records`); codes only if asked for."""
        if include_codes:
            return self._table
        return self._table.drop_columns(self.embedder_names)

    # -- add / remove ---------------------------------------------------------------------------
    def add(
        self,
        images: Any,
        *,
        owner: str,
        title: str | Sequence[str] | None = None,
        source_uri: str | Sequence[str | None] | None = None,
    ) -> AddReport:
        """Add images (paths, bytes, PIL images, arrays, tensors) under `owner`.

        Bad inputs become error records; an input whose sha256 or whose every code equals a live
        artwork's (or an earlier input's) is reported as a duplicate and not added. Each FAISS
        index is extended in place. Returns what happened to each input.
        """
        if not isinstance(owner, str) or not owner.strip():
            raise RegistryError(f"`owner` must be a non-empty string; got {owner!r}")
        items = split_batch(images)
        titles = per_item("title", title, len(items))
        uris = per_item("source_uri", source_uri, len(items))
        decoded, errors = decode_untrusted_images(items, self.limits)
        report = AddReport(errors=errors)
        aliases: list[Alias] = []
        fresh = split_by_sha256(self._table, decoded, report, aliases)
        if fresh:
            codes = {n: e.embed([d.pixels for d in fresh]) for n, e in self._embedders.items()}
            first = self.embedder()
            near = rows_with_code(self._index(first.name), first, codes[first.name], self._table)
            keep = split_identical(fresh, codes, near, self._embedders, report, aliases)
            if keep:
                fresh = [fresh[i] for i in keep]
                codes = {n: c[keep] for n, c in codes.items()}
                ids = self._extend_indexes(codes)
                rows = artwork_rows(
                    self._table.schema,
                    fresh,
                    ids,
                    codes,
                    self._embedders,
                    owner=owner,
                    titles=titles,
                    uris=uris,
                )
                self._set_table(pa.concat_tables([self._table, rows]))
                self._commit(self.embedder_names)
                for d, artwork_id in zip(fresh, ids.tolist(), strict=True):
                    report.added.append(AddedArtwork(d.index, artwork_id, d.sha256, d.source))
        resolve_aliases(report, aliases)
        return report

    def _extend_indexes(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        """Give new codes fresh ids and add them to every index (an empty index is built for
        its first batch, so it gets the kind the policy picks for that size)."""
        start = self._next_id()
        ids = np.arange(start, start + len(next(iter(codes.values()))), dtype=np.int64)
        for name, e in self._embedders.items():
            index = self._index(name)
            if index.ntotal == 0:
                self._indexes[name] = self._build_index(e, codes[name], ids)
            else:
                index.add(codes[name], ids)
        self._manifest.next_id = int(ids[-1]) + 1
        return ids

    def remove(self, ids: int | Sequence[int]) -> list[int]:
        """Remove artworks by id; all must exist (nothing changes otherwise). Returns the ids."""
        wanted = np.unique(np.atleast_1d(np.asarray(ids, dtype=np.int64)))
        unknown = wanted[~np.isin(wanted, self._live_ids)]
        if len(unknown):
            raise RegistryError(f"no artwork with id {', '.join(map(str, unknown.tolist()))}")
        changed = [n for n in self.embedder_names if self._index(n).remove(wanted) > 0]
        self._set_table(
            self._table.filter(pc.invert(pc.is_in(self._table["id"], pa.array(wanted))))
        )
        self._commit(changed)
        return wanted.tolist()

    # -- search ---------------------------------------------------------------------------------
    def search(
        self,
        images: Any,
        *,
        embedder: str | None = None,
        threshold: float | None = None,
        k: int | None = None,
    ) -> list[Hit]:
        """Match query images against the registry with one embedder.

        Without `k`: a range search returning every artwork within `threshold` (default: the
        embedder's calibrated threshold). With `k`: the `k` nearest artworks per query, further
        limited to `threshold` if one is given. Inputs are decoded under `limits`; an undecodable
        query raises `ImageDecodeError` naming it (decode untrusted batches with
        `dmsec.images.decode_untrusted_images` first to get per-file records).
        """
        emb = self.embedder(embedder)
        pixels = [
            decode_untrusted_image(item, i, self.limits).pixels
            for i, item in enumerate(split_batch(images))
        ]
        codes = emb.embed(pixels) if pixels else np.empty((0, emb.code_size), np.uint8)
        return self.search_codes(codes, embedder=emb.name, threshold=threshold, k=k)

    def search_codes(
        self,
        codes: np.ndarray,
        *,
        embedder: str | None = None,
        threshold: float | None = None,
        k: int | None = None,
    ) -> list[Hit]:
        """`search` for codes the caller already computed with that embedder."""
        emb = self.embedder(embedder)
        if len(codes) == 0:
            return []
        codes = emb.check_codes(codes, "codes")
        return collect_hits(
            self._index(emb.name), emb, codes, threshold=threshold, k=k, live_ids=self._live_ids
        )

    # -- maintenance ----------------------------------------------------------------------------
    def rebuild(self, policy: IndexPolicy | None = None) -> None:
        """Rebuild every FAISS index from artworks.parquet (dropping stale codes), with
        `policy` (default: the recorded one) choosing each kind for the current size."""
        if policy is not None:
            self._manifest.policy = policy
        for name, e in self._embedders.items():
            self._indexes[name] = self._build_index(e)
        self._commit(self.embedder_names)

    def stats(self) -> RegistryStats:
        """Counts, index kinds, stale codes and sizes."""
        entries = []
        for name, e in self._embedders.items():
            index = self._index(name)
            kind = index.kind
            entries.append(
                EmbedderStats(
                    name=name,
                    metric=e.metric,
                    dim=e.dim,
                    kind=kind,
                    exact=self.policy.is_exact(kind),
                    codes=index.ntotal,
                    stale=index.ntotal - len(self),
                    index_bytes=self._store.size(index_file(name)),
                    recommended_kind=self.policy.kind_for(e.metric, len(self)),
                )
            )
        return RegistryStats(
            location=self.location,
            artworks=len(self),
            owners=len(pc.unique(self._table["owner"])),
            next_id=self._next_id(),
            embedders=entries,
            policy=self.policy.to_dict(),
        )

    # -- internals ------------------------------------------------------------------------------
    def _index(self, name: str) -> VectorIndex:
        if name not in self._indexes:
            e = self._embedders[name]
            data = self._store.read_bytes(index_file(name))
            if data is None:
                if len(self):
                    raise RegistryError(
                        f"{self._store.uri(index_file(name))} is missing; run `dmsec index rebuild`"
                    )
                index = self._build_index(e)
            else:
                index = VectorIndex.from_bytes(
                    data, metric=e.metric, dim=e.dim, policy=self.policy, use_gpu=self.use_gpu
                )
                absent = ~np.isin(self._live_ids, index.ids())
                if absent.any():
                    raise RegistryError(
                        f"{self._store.uri(index_file(name))} lacks {int(absent.sum())} artworks "
                        "listed in artworks.parquet; run `dmsec index rebuild`"
                    )
            self._indexes[name] = index
        return self._indexes[name]

    def _build_index(
        self, e: Embedder, codes: np.ndarray | None = None, ids: np.ndarray | None = None
    ) -> VectorIndex:
        """A new index for `e` over `codes` (default: every artwork's code in the table)."""
        if codes is None or ids is None:
            codes, ids = codes_from_arrow(e, self._table[e.name]), self._table["id"].to_numpy()
        return VectorIndex.build(
            codes,
            ids,
            metric=e.metric,
            dim=e.dim,
            policy=self.policy,
            use_gpu=self.use_gpu,
        )

    def _next_id(self) -> int:
        """Smallest id never used: above the counter, every live row and every index entry."""
        candidates = [self._manifest.next_id]
        if len(self._live_ids):
            candidates.append(int(self._live_ids[-1]) + 1)
        for index in self._indexes.values():
            ids = index.ids()
            if len(ids):
                candidates.append(int(ids.max()) + 1)
        return max(candidates)

    def _set_table(self, table: pa.Table) -> None:
        self._table = table
        self._live_ids = np.sort(table["id"].to_numpy())

    def _commit(self, changed_indexes: Sequence[str]) -> None:
        """Write changed indexes, then artworks.parquet, then registry.json (the commit point)."""
        for name in changed_indexes:
            self._store.write_bytes(index_file(name), self._indexes[name].to_bytes())
        buf = io.BytesIO()
        pq.write_table(self._table, buf, compression="zstd")
        self._store.write_bytes(ARTWORKS_FILE, buf.getvalue())
        self._manifest.next_id = self._next_id()
        self._store.write_bytes(MANIFEST_FILE, self._manifest.to_json().encode())
